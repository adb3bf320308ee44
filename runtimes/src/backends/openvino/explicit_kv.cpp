// ONNX bundles (explicit KV: inputs input_ids, attention_mask, position_ids,
// past_key_values.{i}.key/value; outputs logits, present.{i}.key/value — see export/onnx_export.py)
// on OpenVINO, which reads the .onnx file with its ONNX frontend; and the KV bookkeeping that the
// ONNX Runtime backend (onnxruntime/ort_model.cpp) shares. The cache design is described in explicit_kv.hpp.
//
// On OpenVINO the presents are written straight into the runtime's buffers: each call binds the
// past buffers as inputs and the other buffers, at the exact present shape, as output tensors
// (the CPU plugin writes into user output tensors of a dynamic-shape model; checked when it was
// written). The logits go into a buffer of ours too, and the LM head gets the same row slice as
// the stateful backend, so a prefill computes one logits row.
#include <algorithm>
#include <cstring>
#include <numeric>

#include "backends/explicit_kv.hpp"
#include "backends/openvino/openvino.hpp"
#include "core/error.hpp"

namespace es {

// --- ExplicitKvCache ---------------------------------------------------------------------------

void ExplicitKvCache::init(std::vector<KvTensorSpec> tensors) {
    tensors_ = std::move(tensors);
    for (auto &b : buffers_) b.resize(tensors_.size());
    reserve(0, 256);
    reserve(1, 256);
    reset();
}

void ExplicitKvCache::reserve(int which, size_t slots) {
    for (size_t i = 0; i < tensors_.size(); ++i) {
        Buffer &b = buffers_[which][i];
        if (b.slots >= slots && b.data) continue;
        const size_t cap = std::max({slots, b.slots + b.slots / 2, size_t(256)});
        const size_t size = (bytes(i, cap) + 63) / 64 * 64;
        void *p = std::aligned_alloc(64, size);
        if (!p) throw std::bad_alloc();
        b.data.reset(static_cast<uint8_t *>(p));
        b.slots = cap;
    }
}

void ExplicitKvCache::begin(size_t n) {
    phys_ = slots_.size();
    pending_ = n;
    reserve(cur_ ^ 1, phys_ + n);
    slots_.resize(phys_ + n, 1);
    positions_.resize(n);
    std::iota(positions_.begin(), positions_.end(), static_cast<int64_t>(live_.size()));
}

void ExplicitKvCache::commit() {
    for (size_t i = 0; i < pending_; ++i) live_.push_back(static_cast<int64_t>(phys_ + i));
    cur_ ^= 1;
    phys_ += pending_;
    pending_ = 0;
}

void ExplicitKvCache::abort() {
    slots_.resize(phys_);
    pending_ = 0;
}

void ExplicitKvCache::rollback(size_t n) {
    if (n >= live_.size()) return;
    for (size_t j = n; j < live_.size(); ++j) slots_[static_cast<size_t>(live_[j])] = 0;
    live_.resize(n);
    const size_t dead = slots_.size() - live_.size();
    if (dead > std::max<size_t>(64, live_.size() / 4)) compact();
}

void ExplicitKvCache::reset() {
    slots_.clear();
    live_.clear();
    phys_ = pending_ = 0;
    compactions_ = 0;
}

// Gathers the live slots of every KV tensor into the other buffer, which becomes the past.
void ExplicitKvCache::compact() {
    const size_t phys = slots_.size(), n = live_.size();
    if (n == phys) return;
    reserve(cur_ ^ 1, n);
    for (size_t i = 0; i < tensors_.size(); ++i) {
        const size_t row = tensors_[i].head_dim * tensors_[i].elem_size;  // bytes of one slot of one head
        const auto *src = static_cast<const uint8_t *>(past(i));
        auto *dst = static_cast<uint8_t *>(present(i));
        for (size_t h = 0; h < tensors_[i].heads; ++h) {
            size_t j = 0;  // runs of consecutive live slots: one memcpy each
            while (j < n) {
                size_t run = 1;
                while (j + run < n && live_[j + run] == live_[j] + static_cast<int64_t>(run)) ++run;
                std::memcpy(dst + (h * n + j) * row, src + (h * phys + static_cast<size_t>(live_[j])) * row, run * row);
                j += run;
            }
        }
    }
    cur_ ^= 1;
    slots_.assign(n, 1);
    std::iota(live_.begin(), live_.end(), 0);
    phys_ = n;
    ++compactions_;
}

// --- OpenVINO on an ONNX graph -----------------------------------------------------------------

namespace {

constexpr const char *kPastPrefix = "past_key_values.";
constexpr const char *kPresentPrefix = "present.";

bool starts_with(const std::string &s, const char *p) { return s.rfind(p, 0) == 0; }

const ov::Output<const ov::Node> *find_port(const std::vector<ov::Output<const ov::Node>> &ports, const std::string &name) {
    for (const auto &p : ports)
        if (p.get_names().count(name)) return &p;
    return nullptr;
}

class ExplicitKvModel final : public ExplicitKvModelBase {
public:
    const char *backend() const override { return "openvino-explicit-kv"; }
    ExplicitKvModel(ov::Core &core, const ModelSpec &spec, const DeviceOptions &options) : device_(options.device) {
        std::shared_ptr<ov::Model> model;
        try {
            model = core.read_model(spec.model_file);
        } catch (const std::exception &e) {
            throw Error(ES_ERR_BUNDLE,
                        "OpenVINO could not read " + spec.model_file + " (" + first_line(e.what()) + "); re-export the bundle.");
        }
        std::vector<KvTensorSpec> kv;
        for (const auto &in : model->inputs()) {
            const std::string name = in.get_any_name();
            if (!starts_with(name, kPastPrefix)) continue;
            KvTensorSpec t;
            t.past = name;
            t.present = kPresentPrefix + name.substr(std::strlen(kPastPrefix));
            const auto &ps = in.get_partial_shape();
            if (ps.rank().is_dynamic() || ps.rank().get_length() != 4 || ps[1].is_dynamic() || ps[3].is_dynamic())
                throw Error(ES_ERR_BUNDLE, "The input " + name + " of " + spec.model_file +
                                               " is not [batch, kv_heads, past, head_dim] with fixed heads; re-export the bundle.");
            t.heads = static_cast<size_t>(ps[1].get_length());
            t.head_dim = static_cast<size_t>(ps[3].get_length());
            t.elem_size = in.get_element_type().size();
            kv.push_back(t);
        }
        auto has = [&](const std::string &n, bool output) {
            for (const auto &p : output ? model->outputs() : model->inputs())
                if (p.get_names().count(n)) return true;
            return false;
        };
        for (const char *name : {"input_ids", "attention_mask", "position_ids"})
            if (!has(name, false))
                throw Error(ES_ERR_BUNDLE, "The model " + spec.model_file + " has no '" + name +
                                               "' input, so it is not an edgespec ONNX export; re-export the bundle.");
        if (kv.empty() || !has("logits", true))
            throw Error(
                ES_ERR_BUNDLE,
                "The model " + spec.model_file +
                    " has no past_key_values inputs or no logits output, so it is not an edgespec ONNX export; re-export the bundle.");
        for (const auto &t : kv)
            if (!has(t.present, true))
                throw Error(ES_ERR_BUNDLE, "The model " + spec.model_file + " has the input " + t.past + " but no output " + t.present +
                                               "; re-export the bundle.");
        has_rows_input_ = insert_logits_slice(model);
        vocab_ = static_cast<size_t>(spec.vocab_size);
        for (const auto &o : model->outputs())
            if (o.get_names().count("logits") && o.get_partial_shape().rank().is_static() && o.get_partial_shape()[2].is_static()) {
                vocab_ = static_cast<size_t>(o.get_partial_shape()[2].get_length());
                logits_f32_ = o.get_element_type() == ov::element::f32;
            }
        ov::CompiledModel compiled = compile_on_device(core, model, options, spec.model_file);
        request_ = compiled.create_infer_request();
        const auto ins = compiled.inputs(), outs = compiled.outputs();
        ids_port_ = *find_port(ins, "input_ids");
        mask_port_ = *find_port(ins, "attention_mask");
        pos_port_ = *find_port(ins, "position_ids");
        if (has_rows_input_) rows_port_ = *find_port(ins, kLogitsRowsInput);
        logits_port_ = *find_port(outs, "logits");
        for (const auto &t : kv) {
            past_ports_.push_back(*find_port(ins, t.past));
            present_ports_.push_back(*find_port(outs, t.present));
            types_.push_back(past_ports_.back().get_element_type());
        }
        cache_.init(std::move(kv));
    }

    const float *forward(const int64_t *ids, size_t n, size_t n_rows) override {
        cache_.begin(n);
        const size_t phys = cache_.phys();
        const size_t rows = has_rows_input_ ? n_rows : n;
        try {
            request_.set_tensor(ids_port_, ov::Tensor(ov::element::i64, {1, n}, const_cast<int64_t *>(ids)));
            request_.set_tensor(mask_port_, ov::Tensor(ov::element::i64, {1, phys + n}, cache_.mask()));
            request_.set_tensor(pos_port_, ov::Tensor(ov::element::i64, {1, n}, cache_.positions()));
            if (has_rows_input_) {
                rows_ = static_cast<int64_t>(n_rows);
                request_.set_tensor(rows_port_, ov::Tensor(ov::element::i64, {1}, &rows_));
            }
            const auto &specs = cache_.tensors();
            for (size_t i = 0; i < specs.size(); ++i) {
                request_.set_tensor(past_ports_[i], ov::Tensor(types_[i], {1, specs[i].heads, phys, specs[i].head_dim}, cache_.past(i)));
                request_.set_tensor(present_ports_[i],
                                    ov::Tensor(types_[i], {1, specs[i].heads, phys + n, specs[i].head_dim}, cache_.present(i)));
            }
            if (logits_f32_) {
                if (logits_.size() < rows * vocab_) logits_.resize(rows * vocab_);
                request_.set_tensor(logits_port_, ov::Tensor(ov::element::f32, {1, rows, vocab_}, logits_.data()));
            }
            if (cancelled()) throw_cancelled();  // not interrupted inside the call: see openvino.hpp's heal_width
            request_.infer();
        } catch (...) {
            cache_.abort();
            throw;
        }
        cache_.commit();
        // A plugin that did not write into our present buffers would break the cache: check the
        // cheap part (the tensor the request holds is ours).
        if (request_.get_tensor(present_ports_[0]).data() != cache_.past(0))
            throw Error(ES_ERR_INTERNAL, "Device '" + device_ +
                                             "' did not write the KV cache into the runtime's buffers; use the CPU device for ONNX bundles "
                                             "or export with --format openvino.");
        if (logits_f32_) return logits_.data() + (rows - n_rows) * vocab_;
        ov::Tensor logits = request_.get_tensor(logits_port_);
        const size_t got_rows = logits.get_shape()[1];
        logits_.resize(logits.get_size());
        ov::Tensor dst(ov::element::f32, logits.get_shape(), logits_.data());
        logits.copy_to(dst);
        return logits_.data() + (got_rows - n_rows) * vocab_;
    }

private:
    static std::string first_line(const std::string &s) { return s.substr(0, s.find('\n')); }

    ov::InferRequest request_;
    ov::Output<const ov::Node> ids_port_, mask_port_, pos_port_, rows_port_, logits_port_;
    std::vector<ov::Output<const ov::Node>> past_ports_, present_ports_;
    std::vector<ov::element::Type> types_;
    std::vector<float> logits_;
    std::string device_;
    bool has_rows_input_ = false;
    bool logits_f32_ = false;
    int64_t rows_ = 1;
};

}  // namespace

std::unique_ptr<Model> make_explicit_kv_model(ov::Core &core, const ModelSpec &spec, const DeviceOptions &options) {
    return std::make_unique<ExplicitKvModel>(core, spec, options);
}

}  // namespace es
