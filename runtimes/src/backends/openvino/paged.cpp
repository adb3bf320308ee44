// OpenVINO stateful IR driven through paged attention: OpenVINO's own SDPAToPagedAttention pass
// (the one OpenVINO GenAI applies) turns the graph's KV-cache state into per-layer key_cache.N /
// value_cache.N block tensors that we own, and the attention reads a sequence's blocks through
// block_indices and past_lens.
//
// One sequence, so the block table is simply 0, 1, 2, ...: position p lives in block p / B, row
// p % B. Rollback is free and exact: it lowers n_past, and the next call writes its tokens over
// the rejected ones (nothing reads past past_lens + the new tokens). No dead slots, no mask, no
// compaction, no copy.
//
// The cache tensors grow by doubling (the one copy a growth costs is amortised, and a pipeline
// keeps its tensors across generations). Block size, element type and row layout are the
// compiled model's (the CPU plugin packs u8 scales into the rows: key [blocks, heads, B + 8, D],
// value [blocks, heads, B, D + 8]), so they are read from the compiled inputs, never assumed.
//
// On this project's 2-core AVX2 reference CPU the paged kernels are 2-7 % faster per call than the
// stateful SDPA ones, more at long contexts (prefill and verify); see the issue notes.
//
// Fixed-width copies: OpenVINO's CPU plugin runs a graph with a dynamic input shape through shape
// inference and buffer checks at every node on every call, which costs a small model about as
// much as its arithmetic (the demo target's 1-token call: 2.4 ms dynamic, 1.6 ms with the width
// fixed), and re-prepares the graph whenever the width changes between calls (the drafter's
// 2-token catch-up, then 1-token calls). So the widths the decode loop calls most (the target's
// decode and verify widths, the drafter's 1 and 2) can get a compile of their own with input_ids
// fixed to that width; every compile reads and writes the same cache tensors, so a call picks
// the compile of its width, or the dynamic one (prefill, anything else), and nothing is copied.
// Each copy holds the weights again: by default only models up to kFixedWidthMaxBytes get them.
//
// Short calls as one-token subsequences: the CPU kernel sends a subsequence of more than one
// query token through its "mixed" path, which first transposes and dequantizes that
// subsequence's whole KV cache into scratch buffers, so a 3-token verify pays for repacking the
// whole context (the demo target at 1800 tokens: 4.7 ms against a 2.7 ms decode step). A call of
// n <= kSplitMaxWidth tokens therefore goes in as n subsequences of one token each: token j with
// past_lens n_past + j over the same block table. The kernel writes every new token's K/V before
// any attention runs, so subsequence j sees tokens n_past .. n_past + j - 1 of the same call:
// the same causal attention, on the decode kernel that reads the cache in place (3.8 ms there;
// logits equal to f32 rounding). Each subsequence reads the whole cache again, so the gain
// shrinks with the width: end to end, 8-token verify calls (k = 7) ran 0.97x as fast this way,
// so wider calls and the prefill stay one sequence. Float caches only (the CPU default here is
// f16): a u8 cache quantizes keys by channel per block, which one-token subsequences sharing a
// block race on. lab/experiments/verify_as_sequences.py, split_layout_ab.py
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <future>
#include <map>
#include <numeric>

#include <openvino/pass/manager.hpp>
#include <openvino/pass/sdpa_to_paged_attention.hpp>

#include "backends/openvino/openvino.hpp"
#include "core/error.hpp"

namespace es {

namespace {

bool is_cache_input(const std::string &name) { return name.rfind("key_cache.", 0) == 0 || name.rfind("value_cache.", 0) == 0; }

class PagedModel final : public Model {
public:
    PagedModel(ov::Core &core, const ModelSpec &spec, const DeviceOptions &options) {
        std::shared_ptr<ov::Model> model = core.read_model(spec.model_file);
        if (options.transform) options.transform(model);
        if (model->get_sinks().empty())
            throw Error(ES_ERR_BUNDLE, "The model " + spec.model_file +
                                           " keeps no KV-cache state (not exported with stateful=True); re-export the bundle.");
        try {
            ov::pass::Manager manager;
            manager.register_pass<ov::pass::SDPAToPagedAttention>();
            manager.run_passes(model);
        } catch (const std::exception &e) {
            throw Error(ES_ERR_BUNDLE, "OpenVINO cannot convert " + spec.model_file + " to paged attention (" + ov_reason(e.what()) +
                                           "); use the openvino-stateful backend.");
        }
        static const char *const kInputs[] = {"input_ids",     "position_ids",   "past_lens", "subsequence_begins", "block_indices_begins",
                                              "block_indices", "max_context_len"};
        for (const auto &in : model->inputs()) {
            const std::string name = in.get_any_name();
            if (is_cache_input(name) || std::find(std::begin(kInputs), std::end(kInputs), name) != std::end(kInputs)) continue;
            throw Error(ES_ERR_BUNDLE, "The paged-attention form of " + spec.model_file + " has an input '" + name +
                                           "' this runtime does not drive; use the openvino-stateful backend.");
        }
        // The head's input is [tokens, 1, hidden] here: the slice keeps the last rows of axis 0.
        has_rows_input_ = insert_logits_slice(model, 0);
        vocab_ = static_cast<size_t>(spec.vocab_size);
        for (const auto &o : model->outputs())
            if (o.get_names().count("logits") && o.get_partial_shape().rank().is_static() && o.get_partial_shape()[2].is_static())
                vocab_ = static_cast<size_t>(o.get_partial_shape()[2].get_length());
        for (const auto &o : model->outputs())
            if (o.get_names().count(kFeaturesOutput) && o.get_partial_shape().rank().is_static() && o.get_partial_shape()[2].is_static())
                feature_width_ = static_cast<size_t>(o.get_partial_shape()[2].get_length());  // [tokens, 1, width]
        ov::CompiledModel compiled = compile_on_device(core, model, options, spec.model_file);
        dynamic_ = variant(compiled, spec);
        for (const auto &in : compiled.inputs()) {
            const std::string name = in.get_any_name();
            if (!is_cache_input(name)) continue;
            const ov::PartialShape ps = in.get_partial_shape();
            if (ps.rank().is_dynamic() || ps.rank().get_length() != 4 || !ps[1].is_static() || !ps[2].is_static() || !ps[3].is_static() ||
                in.get_element_type().is_dynamic())
                throw Error(ES_ERR_DEVICE, "Device '" + options.device + "' left the cache input " + name + " of " + spec.model_file +
                                               " without a static layout; use the openvino-stateful backend.");
            CacheInput c{name,
                         in.get_element_type(),
                         ov::Shape{0, static_cast<size_t>(ps[1].get_length()), static_cast<size_t>(ps[2].get_length()),
                                   static_cast<size_t>(ps[3].get_length())},
                         {}};
            if (name.rfind("value_cache.", 0) == 0) block_ = c.block_shape[2];  // value rows are tokens (key rows may carry scales)
            caches_.push_back(std::move(c));
        }
        if (caches_.empty() || block_ == 0)
            throw Error(ES_ERR_BUNDLE,
                        "The paged-attention form of " + spec.model_file + " has no KV-cache inputs; use the openvino-stateful backend.");
        if (wants_fixed_widths(spec, options)) compile_fixed_widths(core, model, spec, options);
        // Not with an integer cache: the CPU plugin quantizes u8 keys by channel, re-quantizing the
        // whole block a token lands in, per subsequence and in parallel, so one-token subsequences
        // that share a block race on it (wrong logits, not just rounding).
        const bool float_cache = std::all_of(caches_.begin(), caches_.end(), [](const CacheInput &c) { return c.type.is_real(); });
        if (options.device.rfind("CPU", 0) == 0 && float_cache) split_max_ = options.split_max;
    }

    const float *forward(const int64_t *ids, size_t n, size_t n_rows) override {
        const size_t total = n_past_ + n;
        const size_t blocks = (total + block_ - 1) / block_;
        if (blocks > capacity_) grow(std::max(blocks, std::max<size_t>(8, 2 * capacity_)));
        positions_.resize(n);
        std::iota(positions_.begin(), positions_.end(), static_cast<int64_t>(n_past_));
        if (block_table_.size() < blocks) {
            block_table_.resize(blocks);
            std::iota(block_table_.begin(), block_table_.end(), 0);
        }
        // Subsequence layout: one sequence of n tokens, or (2 <= n <= split_max_) n sequences of
        // one token; subsequence j starts after n_past + j * per positions and reads blocks 0 ..
        // of its length.
        const size_t seqs = n >= 2 && n <= split_max_ ? n : 1, per = n / seqs;
        past_lens_.resize(seqs);
        begins_.resize(seqs + 1);
        block_begins_.resize(seqs + 1);
        begins_[0] = block_begins_[0] = 0;
        for (size_t j = 0; j < seqs; ++j) {
            const size_t len = n_past_ + (j + 1) * per;
            past_lens_[j] = static_cast<int32_t>(len - per);
            begins_[j + 1] = static_cast<int32_t>((j + 1) * per);
            block_begins_[j + 1] = block_begins_[j] + static_cast<int32_t>((len + block_ - 1) / block_);
        }
        const int32_t *table = block_table_.data();
        if (seqs > 1) {
            split_table_.resize(static_cast<size_t>(block_begins_[seqs]));
            for (size_t j = 0; j < seqs; ++j)
                std::copy(block_table_.begin(), block_table_.begin() + (block_begins_[j + 1] - block_begins_[j]),
                          split_table_.begin() + block_begins_[j]);
            table = split_table_.data();
        }
        max_context_ = static_cast<int32_t>(total);
        // Inputs go straight into the request's own tensors through cached ports (a set_tensor
        // by name costs tens of microseconds per call, several % of a small drafter's call).
        Variant &v = heal_ ? dynamic_ : n < fixed_.size() && fixed_[n] ? *fixed_[n] : dynamic_;
        Inputs &in_ = v.in;
        write(in_.ids, ids, n);
        write(in_.positions, positions_.data(), n);
        write(in_.past_lens, past_lens_.data(), seqs);
        write(in_.begins, begins_.data(), seqs + 1);
        write(in_.block_begins, block_begins_.data(), seqs + 1);
        write(in_.blocks, table, static_cast<size_t>(block_begins_[seqs]));
        write(in_.max_context, &max_context_, 0);
        if (has_rows_input_) {
            rows_ = static_cast<int64_t>(n_rows);
            write(in_.rows, &rows_, 1);
        }
        try {
            infer_cancellable(v.request, *this);
        } catch (const Error &e) {
            if (e.status == ES_ERR_CANCELLED && &v == &dynamic_) interrupted_ = n;  // fixed-width compiles have no shapes to go stale
            throw;
        }
        n_past_ = total;
        if (feature_width_) {
            ov::Tensor f = v.request.get_tensor(v.features);
            features_.resize(f.get_size());
            f.copy_to(ov::Tensor(ov::element::f32, f.get_shape(), features_.data()));
        }
        ov::Tensor logits = v.request.get_tensor(v.logits);
        const size_t got_rows = logits.get_shape()[0];  // [rows, 1, vocab]
        if (logits.get_element_type() != ov::element::f32) {
            converted_.resize(logits.get_size());
            ov::Tensor dst(ov::element::f32, logits.get_shape(), converted_.data());
            logits.copy_to(dst);
            return converted_.data() + (got_rows - n_rows) * vocab_;
        }
        return logits.data<const float>() + (got_rows - n_rows) * vocab_;
    }

    void rollback(size_t n) override { n_past_ = std::min(n_past_, n); }
    void reset() override {
        n_past_ = 0;
        if (!interrupted_) return;
        // heal_width(): a throwaway call on the dynamic compile, its cache writes dropped
        const int64_t ids[2] = {0, 0};
        const size_t w = heal_width(interrupted_);
        interrupted_ = 0;
        heal_ = true;
        try {
            forward(ids, w, 1);
        } catch (...) {
            heal_ = false;
            n_past_ = 0;
            throw;
        }
        heal_ = false;
        n_past_ = 0;
    }
    size_t n_past() const override { return n_past_; }
    size_t vocab() const override { return vocab_; }
    const char *backend() const override { return "openvino-paged"; }
    const float *features() const override { return feature_width_ ? features_.data() : nullptr; }
    size_t feature_width() const override { return feature_width_; }
    std::vector<size_t> split_widths() const override {
        std::vector<size_t> out;
        for (size_t w = 2; w <= split_max_; ++w) out.push_back(w);
        return out;
    }
    std::vector<size_t> fixed_widths() const override {
        std::vector<size_t> out;
        for (size_t w = 0; w < fixed_.size(); ++w)
            if (fixed_[w]) out.push_back(w);
        return out;
    }

protected:
    void interrupt() override {
        dynamic_.request.cancel();
        for (auto &v : fixed_)
            if (v) v->request.cancel();
    }

private:
    struct CacheInput {
        std::string name;
        ov::element::Type type;
        ov::Shape block_shape;  // [0, heads, rows, width]: dim 0 is the block count
        ov::Tensor tensor;
    };

    struct Input {
        ov::Output<const ov::Node> port;
        ov::Tensor tensor;  // the request's own tensor of port
    };
    struct Inputs {
        Input ids, positions, past_lens, begins, block_begins, blocks, max_context, rows;
    };

    // One compile of the graph, its request and that request's own input tensors.
    struct Variant {
        ov::InferRequest request;
        Inputs in;
        ov::Output<const ov::Node> logits;
        ov::Output<const ov::Node> features;  // kFeaturesOutput, where the graph has it (EAGLE-3 target)
    };

    Variant variant(ov::CompiledModel compiled, const ModelSpec &spec) {
        Variant v;
        v.request = compiled.create_infer_request();
        auto input = [&](const std::string &name) {
            for (const auto &in : compiled.inputs())
                if (in.get_names().count(name)) return Input{in, v.request.get_tensor(in)};
            throw Error(ES_ERR_BUNDLE,
                        "The compiled paged-attention model has no input '" + name + "'; use the openvino-stateful backend.");
        };
        v.in = Inputs{input("input_ids"),
                      input("position_ids"),
                      input("past_lens"),
                      input("subsequence_begins"),
                      input("block_indices_begins"),
                      input("block_indices"),
                      input("max_context_len"),
                      {}};
        if (has_rows_input_) v.in.rows = input(kLogitsRowsInput);
        for (const auto &o : compiled.outputs()) {
            if (o.get_names().count("logits")) v.logits = o;
            if (o.get_names().count(kFeaturesOutput)) v.features = o;
        }
        if (!v.logits.get_node())
            throw Error(ES_ERR_BUNDLE, "The model " + spec.model_file + " has no output named 'logits'; re-export the bundle.");
        for (const auto &c : caches_)
            if (c.tensor) v.request.set_tensor(c.name, c.tensor);
        return v;
    }

    static bool wants_fixed_widths(const ModelSpec &spec, const DeviceOptions &options) {
        if (options.fixed_shapes == 0 || options.fixed_widths.empty() || options.device.rfind("CPU", 0) != 0) return false;
        if (options.fixed_shapes == 1) return true;
        std::error_code ec;
        const auto weights = std::filesystem::file_size(std::filesystem::path(spec.model_file).replace_extension(".bin"), ec);
        return !ec && weights <= kFixedWidthMaxBytes;
    }

    // Compiles a copy of the graph per width in options.fixed_widths (distinct, positive), two at
    // a time. A width whose reshape or compile fails stays on the dynamic graph (the copies are a
    // speed-up, never a requirement).
    void compile_fixed_widths(ov::Core &core, const std::shared_ptr<ov::Model> &model, const ModelSpec &spec,
                              const DeviceOptions &options) {
        const std::vector<size_t> &widths = options.fixed_widths;
        auto reshaped = [&](size_t w) -> std::shared_ptr<ov::Model> {  // on this thread: the graph is not shared
            try {
                std::shared_ptr<ov::Model> copy = model->clone();
                const ov::PartialShape shape{static_cast<int64_t>(w)};
                copy->reshape(std::map<std::string, ov::PartialShape>{{"input_ids", shape}, {"position_ids", shape}});
                return copy;
            } catch (const std::exception &) {
                return nullptr;
            }
        };
        auto compile = [&](std::shared_ptr<ov::Model> copy) -> std::unique_ptr<Variant> {
            if (!copy) return nullptr;
            try {
                return std::make_unique<Variant>(variant(compile_on_device(core, copy, options, spec.model_file), spec));
            } catch (const std::exception &) {
                return nullptr;
            }
        };
        fixed_.resize(*std::max_element(widths.begin(), widths.end()) + 1);
        for (size_t i = 0; i < widths.size(); i += 2) {
            auto second = i + 1 < widths.size() ? std::async(std::launch::async, compile, reshaped(widths[i + 1]))
                                                : std::future<std::unique_ptr<Variant>>();
            fixed_[widths[i]] = compile(reshaped(widths[i]));
            if (second.valid()) fixed_[widths[i + 1]] = second.get();
        }
    }

    // Copies n values into input x (n == 0: a scalar), converting to its element type.
    template <typename T>
    void write(Input &x, const T *values, size_t n) {
        const ov::Shape shape = n == 0 ? ov::Shape{} : ov::Shape{n};
        if (x.tensor.get_shape() != shape) x.tensor.set_shape(shape);
        const size_t count = n == 0 ? 1 : n;
        if (x.tensor.get_element_type() == ov::element::from<T>()) {
            std::memcpy(x.tensor.data(), values, count * sizeof(T));
        } else if (x.tensor.get_element_type() == ov::element::i64) {
            int64_t *d = x.tensor.data<int64_t>();
            for (size_t i = 0; i < count; ++i) d[i] = static_cast<int64_t>(values[i]);
        } else if (x.tensor.get_element_type() == ov::element::i32) {
            int32_t *d = x.tensor.data<int32_t>();
            for (size_t i = 0; i < count; ++i) d[i] = static_cast<int32_t>(values[i]);
        } else {
            throw Error(ES_ERR_BUNDLE, "The paged-attention input " + x.port.get_any_name() +
                                           " is neither i32 nor i64; use the openvino-stateful backend.");
        }
    }

    // Reallocates every cache tensor to `blocks` blocks, keeping what the old ones hold.
    void grow(size_t blocks) {
        for (auto &c : caches_) {
            ov::Shape shape = c.block_shape;
            shape[0] = blocks;
            ov::Tensor fresh(c.type, shape);
            std::memset(fresh.data(), 0, fresh.get_byte_size());
            if (c.tensor) std::memcpy(fresh.data(), c.tensor.data(), c.tensor.get_byte_size());  // blocks are the outer axis
            c.tensor = fresh;
            dynamic_.request.set_tensor(c.name, c.tensor);
            for (auto &v : fixed_)
                if (v) v->request.set_tensor(c.name, c.tensor);
        }
        capacity_ = blocks;
    }

    size_t interrupted_ = 0;                       // width of a call on dynamic_ cancelled part-way since the last reset() (heal_width)
    bool heal_ = false;                            // reset() runs its throwaway call on dynamic_
    Variant dynamic_;                              // any width (prefill, catch-up, anything not below)
    std::vector<std::unique_ptr<Variant>> fixed_;  // [width]: the compile with that input width fixed, or null
    std::vector<CacheInput> caches_;
    size_t block_ = 0, capacity_ = 0, n_past_ = 0, vocab_ = 0;
    bool has_rows_input_ = false;
    std::vector<int64_t> positions_;
    std::vector<int32_t> block_table_;
    std::vector<int32_t> past_lens_, begins_, block_begins_, split_table_;
    int32_t max_context_ = 0;
    size_t split_max_ = 0;  // widest call sent as one-token subsequences (0: never)
    int64_t rows_ = 1;
    std::vector<float> converted_;
    size_t feature_width_ = 0;     // width of the kFeaturesOutput rows (0: the graph has none)
    std::vector<float> features_;  // those rows, of the last call
};

}  // namespace

std::unique_ptr<Model> make_paged_model(ov::Core &core, const ModelSpec &spec, const DeviceOptions &options) {
    return std::make_unique<PagedModel>(core, spec, options);
}

}  // namespace es
