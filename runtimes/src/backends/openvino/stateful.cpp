// OpenVINO stateful IR (optimum-intel `stateful=True`): inputs input_ids, attention_mask,
// position_ids, beam_idx; the KV cache lives in ov::VariableState inside the infer request.
//
// Rollback without copying. The cache has physical slots; `slots_` holds 1 for a live slot and
// 0 for a dead one and is passed, followed by ones for the new tokens, as attention_mask. New
// tokens get explicit position_ids (their logical positions), so rejected tokens can stay in
// the state as dead slots: masked out, they change nothing (measured equal to a clean
// rollback to ~1e-6 in f32; tested in tests/test_engine_kv.py). Dead slots cost memory and
// attention time, so they are compacted away (read each state, gather the live slots,
// set_state) once they exceed max(64, 25% of the live ones): amortised, never a full copy per
// round. A graph with no position_ids input cannot take that trick; it gets the exact
// fallback: every rollback compacts at once (a trim of the tail).
//
// Logits: the LM head of an optimum export computes every position. We insert a Slice in front
// of the head, driven by a new input `es_logits_rows`, so a prefill of n tokens computes one
// row instead of n (the verify call asks for all k+1 rows).
#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>

#include <openvino/op/constant.hpp>
#include <openvino/op/matmul.hpp>
#include <openvino/op/negative.hpp>
#include <openvino/op/parameter.hpp>
#include <openvino/op/read_value.hpp>
#include <openvino/op/slice.hpp>

#include "backends/openvino/openvino.hpp"
#include "core/error.hpp"

namespace es {

const char *const kLogitsRowsInput = "es_logits_rows";

namespace {

const char *const kRowsInput = kLogitsRowsInput;

bool has_input(const std::shared_ptr<ov::Model> &m, const std::string &name) {
    for (const auto &in : m->inputs())
        if (in.get_names().count(name)) return true;
    return false;
}

}  // namespace

// Walks up from the logits output to the LM-head MatMul (through unary ops and ops whose other
// inputs are constants, e.g. a logit scale or soft-cap) and slices its hidden-state input to
// the last `es_logits_rows` positions. Returns false (graph unchanged) if the shape is unusual.
bool insert_logits_slice(const std::shared_ptr<ov::Model> &model, int64_t axis) {
    ov::Output<ov::Node> out;
    bool found = false;
    for (const auto &o : model->outputs())
        if (o.get_names().count("logits")) {
            out = o;
            found = true;
        }
    if (!found) return false;
    std::shared_ptr<ov::Node> node = out.get_node_shared_ptr()->input_value(0).get_node_shared_ptr();
    for (int hops = 0; hops < 8 && node; ++hops) {
        if (auto mm = std::dynamic_pointer_cast<ov::op::v0::MatMul>(node)) {
            auto hidden = mm->input_value(0);
            if (hidden.get_partial_shape().rank().is_dynamic() || hidden.get_partial_shape().rank().get_length() != 3) return false;
            auto rows = std::make_shared<ov::op::v0::Parameter>(ov::element::i64, ov::PartialShape{1});
            rows->set_friendly_name(kRowsInput);
            rows->output(0).get_tensor().set_names({kRowsInput});
            auto start = std::make_shared<ov::op::v0::Negative>(rows);
            auto stop = ov::op::v0::Constant::create(ov::element::i64, {1}, {std::numeric_limits<int64_t>::max()});
            auto step = ov::op::v0::Constant::create(ov::element::i64, {1}, {1});
            auto axes = ov::op::v0::Constant::create(ov::element::i64, {1}, {axis});
            auto slice = std::make_shared<ov::op::v8::Slice>(hidden, start, stop, step, axes);
            mm->input(0).replace_source_output(slice);
            model->add_parameters({rows});
            model->validate_nodes_and_infer_types();
            return true;
        }
        std::shared_ptr<ov::Node> next;
        for (size_t i = 0; i < node->get_input_size(); ++i) {
            auto src = node->input_value(i).get_node_shared_ptr();
            if (ov::as_type_ptr<ov::op::v0::Constant>(src)) continue;
            if (next) return false;  // two non-constant inputs: not a simple chain
            next = src;
        }
        node = next;
    }
    return false;
}

namespace {

// Axis of the sequence dimension in a KV state: the last dynamic dimension of the variable's
// shape ([batch, heads, seq, head_dim] in optimum exports: axis 2).
size_t kv_seq_axis(const std::shared_ptr<ov::Model> &model) {
    for (const auto &op : model->get_ops())
        if (auto rv = std::dynamic_pointer_cast<ov::op::util::ReadValueBase>(op)) {
            auto ps = rv->get_output_partial_shape(0);
            if (ps.rank().is_dynamic()) continue;
            for (int64_t i = ps.rank().get_length() - 1; i > 0; --i)
                if (ps[i].is_dynamic()) return static_cast<size_t>(i);
        }
    return 2;
}

class StatefulModel final : public Model {
public:
    StatefulModel(ov::Core &core, const ModelSpec &spec, const DeviceOptions &options) {
        std::shared_ptr<ov::Model> model = core.read_model(spec.model_file);
        if (options.transform) options.transform(model);
        for (const char *name : {"input_ids", "attention_mask", "beam_idx"})
            if (!has_input(model, name))
                throw Error(ES_ERR_BUNDLE, "The model " + spec.model_file + " has no '" + name +
                                               "' input, so it is not a stateful OpenVINO LLM export; re-export the bundle.");
        if (model->get_sinks().empty())
            throw Error(ES_ERR_BUNDLE, "The model " + spec.model_file +
                                           " keeps no KV-cache state (not exported with stateful=True); re-export the bundle.");
        has_position_ids_ = has_input(model, "position_ids");
        seq_axis_ = kv_seq_axis(model);
        has_rows_input_ = insert_logits_slice(model);
        vocab_ = static_cast<size_t>(spec.vocab_size);
        for (const auto &o : model->outputs())
            if (o.get_names().count("logits") && o.get_partial_shape().rank().is_static() && o.get_partial_shape()[2].is_static())
                vocab_ = static_cast<size_t>(o.get_partial_shape()[2].get_length());
        has_features_in_ = has_input(model, kFeaturesInput);
        for (const auto &o : model->outputs())
            if (o.get_names().count(kFeaturesOutput) && o.get_partial_shape().rank().is_static() && o.get_partial_shape()[2].is_static())
                feature_width_ = static_cast<size_t>(o.get_partial_shape()[2].get_length());
        ov::CompiledModel compiled = compile_on_device(core, model, options, spec.model_file);
        request_ = compiled.create_infer_request();
        beam_idx_ = {0};
    }

    const float *forward(const int64_t *ids, size_t n, size_t n_rows) override {
        const size_t phys = slots_.size();
        slots_.resize(phys + n, 1);
        positions_.resize(n);
        std::iota(positions_.begin(), positions_.end(), static_cast<int64_t>(live_.size()));
        request_.set_tensor("input_ids", ov::Tensor(ov::element::i64, {1, n}, const_cast<int64_t *>(ids)));
        request_.set_tensor("attention_mask", ov::Tensor(ov::element::i64, {1, phys + n}, slots_.data()));
        if (has_position_ids_) request_.set_tensor("position_ids", ov::Tensor(ov::element::i64, {1, n}, positions_.data()));
        request_.set_tensor("beam_idx", ov::Tensor(ov::element::i32, {1}, beam_idx_.data()));
        if (has_rows_input_) {
            rows_ = static_cast<int64_t>(n_rows);
            request_.set_tensor(kRowsInput, ov::Tensor(ov::element::i64, {1}, &rows_));
        }
        if (has_features_in_) {
            if (!features_in_) throw Error(ES_ERR_INTERNAL, "An EAGLE-3 head was called without its feature rows.");
            request_.set_tensor(kFeaturesInput,
                                ov::Tensor(ov::element::f32, {1, n, features_in_width_}, const_cast<float *>(features_in_)));
            features_in_ = nullptr;
        }
        if (cancelled()) throw_cancelled();  // not interrupted inside the call: see openvino.hpp's heal_width
        request_.infer();
        for (size_t i = 0; i < n; ++i) live_.push_back(static_cast<int64_t>(phys + i));
        if (feature_width_) {
            ov::Tensor f = request_.get_tensor(kFeaturesOutput);
            features_.resize(f.get_size());
            f.copy_to(ov::Tensor(ov::element::f32, f.get_shape(), features_.data()));
        }
        ov::Tensor logits = request_.get_tensor("logits");
        const size_t got_rows = logits.get_shape()[1];
        if (logits.get_element_type() != ov::element::f32) {
            converted_.resize(logits.get_size());
            ov::Tensor dst(ov::element::f32, logits.get_shape(), converted_.data());
            logits.copy_to(dst);  // only reached for f16/bf16 output graphs
            return converted_.data() + (got_rows - n_rows) * vocab_;
        }
        return logits.data<const float>() + (got_rows - n_rows) * vocab_;
    }

    void rollback(size_t n) override {
        if (n >= live_.size()) return;
        for (size_t j = n; j < live_.size(); ++j) slots_[static_cast<size_t>(live_[j])] = 0;
        live_.resize(n);
        // Trailing dead slots need no state at all: when every dead slot is at the tail and the
        // next call would only re-append, still keep them (cheap); compact on the budget.
        const size_t dead = slots_.size() - live_.size();
        if (!has_position_ids_ || dead > std::max<size_t>(64, live_.size() / 4)) compact();
    }

    void reset() override {
        request_.reset_state();
        slots_.clear();
        live_.clear();
        compactions_ = 0;
    }

    size_t n_past() const override { return live_.size(); }
    size_t vocab() const override { return vocab_; }
    const char *backend() const override { return "openvino-stateful"; }
    const float *features() const override { return feature_width_ ? features_.data() : nullptr; }
    size_t feature_width() const override { return feature_width_; }
    void set_features(const float *rows, size_t width) override {
        features_in_ = rows;
        features_in_width_ = width;
    }
    int64_t compactions() const override { return compactions_; }

private:
    // Gathers the live slots of every KV state into a fresh tensor and sets it back.
    void compact() {
        const size_t phys = slots_.size();
        if (live_.size() == phys) return;
        for (auto &state : request_.query_state()) {
            ov::Tensor old = state.get_state();
            ov::Shape shape = old.get_shape();
            if (seq_axis_ >= shape.size() || shape[seq_axis_] != phys)
                throw Error(ES_ERR_INTERNAL, "KV state '" + state.get_name() + "' has an unexpected shape; cannot compact it.");
            ov::Shape new_shape = shape;
            new_shape[seq_axis_] = live_.size();
            ov::Tensor fresh(old.get_element_type(), new_shape);
            size_t outer = 1, inner = old.get_element_type().size();
            for (size_t i = 0; i < seq_axis_; ++i) outer *= shape[i];
            for (size_t i = seq_axis_ + 1; i < shape.size(); ++i) inner *= shape[i];
            const auto *src = static_cast<const uint8_t *>(old.data());
            auto *dst = static_cast<uint8_t *>(fresh.data());
            for (size_t o = 0; o < outer; ++o) {
                // Runs of consecutive live slots are copied with one memcpy each.
                size_t j = 0;
                while (j < live_.size()) {
                    size_t run = 1;
                    while (j + run < live_.size() && live_[j + run] == live_[j] + static_cast<int64_t>(run)) ++run;
                    std::memcpy(dst + (o * live_.size() + j) * inner, src + (o * phys + static_cast<size_t>(live_[j])) * inner,
                                run * inner);
                    j += run;
                }
            }
            state.set_state(fresh);
        }
        slots_.assign(live_.size(), 1);
        std::iota(live_.begin(), live_.end(), 0);
        ++compactions_;
    }

    ov::InferRequest request_;
    bool has_position_ids_ = true;
    bool has_rows_input_ = false;
    size_t seq_axis_ = 2;
    size_t vocab_ = 0;
    std::vector<int64_t> slots_;      // physical slots: 1 live, 0 dead (the attention_mask prefix)
    std::vector<int64_t> live_;       // live_[p] = physical slot of logical position p
    std::vector<int64_t> positions_;  // position_ids of the current call
    std::vector<int32_t> beam_idx_;
    std::vector<float> converted_;
    int64_t rows_ = 1;
    int64_t compactions_ = 0;
    size_t feature_width_ = 0;      // width of the kFeaturesOutput rows (0: the graph has none)
    std::vector<float> features_;   // those rows, of the last call
    bool has_features_in_ = false;  // an EAGLE-3 head: reads kFeaturesInput
    const float *features_in_ = nullptr;
    size_t features_in_width_ = 0;
};

}  // namespace

std::unique_ptr<Model> make_stateful_model(ov::Core &core, const ModelSpec &spec, const DeviceOptions &options) {
    return std::make_unique<StatefulModel>(core, spec, options);
}

}  // namespace es
