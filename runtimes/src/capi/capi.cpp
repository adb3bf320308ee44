// The C ABI of pipelines and generation: argument checks, es::guard around every entry point,
// and the opaque handles that own C++ objects. Every handle is looked up in a registry of live
// handles before use, and a pipeline serves one call at a time (ES_ERR_BUSY otherwise), so
// misuse -- a freed handle, a free or a second call during a generation -- gets a status and a
// sentence, never a crash.
#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "core/error.hpp"
#include "core/json.hpp"
#include "edgespec.h"
#include "engine/engine.hpp"

struct es_pipeline {
    std::unique_ptr<es::Pipeline> impl;
    std::string draft_name;
    std::string info;  // es_pipeline_info
    // The call running the models or tokenizers now, guarded by the registry's mutex.
    bool busy = false;
    std::thread::id owner;            // its thread: a call from inside its own stream callback is told apart
    const char *running = "";         // its name, for messages
    std::atomic<bool> cancel{false};  // es_cancel; the decode loop reads it between model calls (the models hold their own)
};

struct es_result {
    es::GenerationOutput out;
};

namespace {

// The live handles. Never destroyed: a host may call in while the process exits.
struct Registry {
    std::mutex mu;
    std::unordered_set<const void *> pipelines, results;
};

Registry &registry() {
    static auto *r = new Registry;
    return *r;
}

bool live_pipeline(const es_pipeline *p) { return p && registry().pipelines.count(p); }  // mu held
bool live_result(const es_result *r) {
    std::lock_guard<std::mutex> lock(registry().mu);
    return r && registry().results.count(r);
}

es::Error not_live(const char *fn) {
    return es::Error(ES_ERR_INVALID_ARGUMENT,
                     std::string(fn) + ": the pipeline handle is not a live pipeline (freed already, or never loaded).");
}

// Exclusive use of a pipeline for one call that runs its models or tokenizers.
class Use {
public:
    Use(es_pipeline *p, const char *fn) : p_(p) {
        std::lock_guard<std::mutex> lock(registry().mu);
        if (!live_pipeline(p)) throw not_live(fn);
        if (p->busy) {
            if (p->owner == std::this_thread::get_id())
                throw es::Error(ES_ERR_BUSY, std::string(fn) + " was called from inside the stream callback of " + p->running +
                                                 " on the same pipeline; a pipeline runs one call at a time, so return from the "
                                                 "callback first (it may call es_cancel).");
            throw es::Error(ES_ERR_BUSY, std::string("The pipeline is busy: ") + p->running +
                                             " is running on another thread; wait for it to "
                                             "return (es_cancel stops a generation) or load one pipeline per thread.");
        }
        p->busy = true;
        p->owner = std::this_thread::get_id();
        p->running = fn;
        clear_cancel(p);
    }
    ~Use() {
        std::lock_guard<std::mutex> lock(registry().mu);
        p_->busy = false;
        clear_cancel(p_);
    }
    Use(const Use &) = delete;
    Use &operator=(const Use &) = delete;

private:
    static void clear_cancel(es_pipeline *p) {
        p->cancel.store(false);
        p->impl->target->clear_cancel();
        if (p->impl->draft) p->impl->draft->clear_cancel();
    }

    es_pipeline *p_;
};

std::string str_or(const char *s, const char *fallback) { return s ? std::string(s) : std::string(fallback); }

std::string json_widths(const std::vector<size_t> &widths) {
    std::string s = "[";
    for (size_t w : widths) s += (s.size() > 1 ? ", " : "") + std::to_string(w);
    return s + "]";
}

std::string json_model(const es::Model &m, const es::DeviceOptions &o) {
    return "\"backend\": " + es::json::quote(m.backend()) + ", \"device\": " + es::json::quote(o.device) +
           ", \"fixed_widths\": " + json_widths(m.fixed_widths()) + ", \"split_widths\": " + json_widths(m.split_widths()) + "}";
}

std::string pipeline_info(const es::Pipeline &p, const es::PipelineOptions &o) {
    std::string s = "{\"target\": {" + json_model(*p.target, o.target) + ", \"draft\": ";
    if (p.draft)
        s += "{\"name\": " + es::json::quote(p.draft_spec.name) + ", \"kind\": " + es::json::quote(p.draft_spec.relation) + ", " +
             json_model(*p.draft, o.draft);
    else
        s += "null";
    const char *integrity = !p.bundle.has_integrity ? "none" : o.verify ? "verified" : "sizes";
    s += ", \"text\": " + es::json::quote(p.text_table ? "byte-table" : "detokenizer") + ", \"integrity\": " + es::json::quote(integrity);
    s += ", \"integrity_ms\": " + std::to_string(p.integrity_ms);
    s += ", \"adapt_log\": " + (p.adapt_log ? es::json::quote(p.adapt_log->file()) : std::string("null"));
    if (p.xvocab)
        s += ", \"translation_cache\": {\"file\": " + es::json::quote(p.xvocab->cache_file) +
             ", \"loaded\": " + std::to_string(p.xvocab->cache_loaded) + ", \"warning\": " + es::json::quote(p.xvocab->cache_warning) + "}";
    return s + "}";
}

}  // namespace

extern "C" {

ES_API es_pipeline_params es_pipeline_default_params(void) {
    es_pipeline_params p;
    std::memset(&p, 0, sizeof p);
    p.device = "CPU";
    p.fixed_shapes = -1;
    p.verify = 1;
    return p;
}

ES_API es_status es_pipeline_load(const char *bundle_dir, const es_pipeline_params *params, es_pipeline **out) {
    return es::guard([&]() -> es_status {
        if (!out) return es::fail(ES_ERR_INVALID_ARGUMENT, "es_pipeline_load: out must not be NULL.");
        *out = nullptr;
        if (!bundle_dir) return es::fail(ES_ERR_INVALID_ARGUMENT, "es_pipeline_load: bundle_dir must not be NULL.");
        es_pipeline_params p = params ? *params : es_pipeline_default_params();
        if (p.num_threads < 0) return es::fail(ES_ERR_INVALID_ARGUMENT, "num_threads must be 0 (device default) or positive.");
        if (p.fixed_shapes < -1 || p.fixed_shapes > 1)
            return es::fail(ES_ERR_INVALID_ARGUMENT,
                            "fixed_shapes must be -1 (auto), 0 (off) or 1 (on) (got " + std::to_string(p.fixed_shapes) + ").");
        if (p.verify != 0 && p.verify != 1)
            return es::fail(ES_ERR_INVALID_ARGUMENT,
                            "verify must be 1 (check file digests) or 0 (sizes only) (got " + std::to_string(p.verify) + ").");
        es::PipelineOptions o;
        o.target.device = str_or(p.device, "CPU");
        o.target.precision = str_or(p.precision, "");
        o.target.kv_precision = str_or(p.kv_precision, "");
        o.target.threads = p.num_threads;
        o.target.backend = str_or(p.backend, "openvino");
        if (o.target.backend != "openvino" && o.target.backend != "openvino-paged" && o.target.backend != "openvino-stateful" &&
            o.target.backend != "onnxruntime")
            return es::fail(ES_ERR_INVALID_ARGUMENT,
                            "Unknown backend '" + o.target.backend + "'; use openvino, openvino-paged, openvino-stateful or onnxruntime.");
        o.target.ort_library = str_or(p.ort_library, "");
        o.target.fixed_shapes = p.fixed_shapes;
        o.draft = o.target;
        if (p.draft_device) o.draft.device = p.draft_device;
        o.draft_name = str_or(p.draft, "");
        o.tokenizers_extension = str_or(p.tokenizers_extension, "");
        o.verify = p.verify != 0;
        o.translation_cache_dir = p.translation_cache_dir ? p.translation_cache_dir : es::default_translation_cache_dir();
        o.adapt_log_dir = str_or(p.adapt_log_dir, "");
        auto handle = std::make_unique<es_pipeline>();
        handle->impl = es::load_pipeline(bundle_dir, o);
        if (handle->impl->draft) handle->draft_name = handle->impl->draft_spec.name;
        handle->info = pipeline_info(*handle->impl, o);
        std::lock_guard<std::mutex> lock(registry().mu);
        registry().pipelines.insert(handle.get());
        *out = handle.release();
        return ES_OK;
    });
}

ES_API es_status es_pipeline_free(es_pipeline *pipeline) {
    if (!pipeline) return ES_OK;
    {
        std::lock_guard<std::mutex> lock(registry().mu);
        if (!live_pipeline(pipeline))
            return es::fail(ES_ERR_INVALID_ARGUMENT,
                            "es_pipeline_free: the pipeline handle is not a live pipeline (freed already, or never loaded).");
        if (pipeline->busy)
            return es::fail(ES_ERR_BUSY, std::string("es_pipeline_free: the pipeline is running ") + pipeline->running +
                                             "; es_cancel it and free it once that call has returned.");
        registry().pipelines.erase(pipeline);
    }
    delete pipeline;
    return ES_OK;
}

ES_API es_status es_cancel(es_pipeline *pipeline) {
    std::lock_guard<std::mutex> lock(registry().mu);
    if (!pipeline) return es::fail(ES_ERR_INVALID_ARGUMENT, "es_cancel: pipeline must not be NULL.");
    if (!live_pipeline(pipeline))
        return es::fail(ES_ERR_INVALID_ARGUMENT, "es_cancel: the pipeline handle is not a live pipeline (freed already, or never loaded).");
    if (pipeline->busy) {
        // The flag stops the decode loop between model calls; the models' own cancel interrupts
        // the call running now (a long prompt's prefill, say).
        pipeline->cancel.store(true);
        pipeline->impl->target->cancel();
        if (pipeline->impl->draft) pipeline->impl->draft->cancel();
    }
    return ES_OK;
}

ES_API int64_t es_pipeline_context_length(const es_pipeline *pipeline) {
    std::lock_guard<std::mutex> lock(registry().mu);
    return live_pipeline(pipeline) ? pipeline->impl->bundle.target.context_length : 0;
}

ES_API const char *es_pipeline_draft_name(const es_pipeline *pipeline) {
    std::lock_guard<std::mutex> lock(registry().mu);
    return live_pipeline(pipeline) ? pipeline->draft_name.c_str() : "";
}

ES_API const char *es_pipeline_info(const es_pipeline *pipeline) {
    std::lock_guard<std::mutex> lock(registry().mu);
    return live_pipeline(pipeline) ? pipeline->info.c_str() : "";
}

ES_API es_generation_config es_generation_default_config(void) {
    es_generation_config c;
    std::memset(&c, 0, sizeof c);
    c.max_new_tokens = 128;
    c.policy = ES_POLICY_AUTO;
    c.k = -1;
    c.k_max = 8;
    c.temperature = 0.f;
    c.top_k = 0;
    c.top_p = 1.f;
    c.seed = 0;
    c.ignore_eos = 0;
    c.draft_stop_prob = 0.f;
    c.stop = nullptr;
    c.n_stop = 0;
    c.draft_window = 1024;
    c.lookup = 1;
    return c;
}

ES_API es_status es_generate(es_pipeline *pipeline, const char *prompt, const es_generation_config *config, es_stream_callback callback,
                             void *user_data, es_result **out) {
    return es::guard([&]() -> es_status {
        if (!out) return es::fail(ES_ERR_INVALID_ARGUMENT, "es_generate: out must not be NULL.");
        *out = nullptr;
        if (!pipeline) return es::fail(ES_ERR_INVALID_ARGUMENT, "es_generate: pipeline must not be NULL.");
        if (!prompt) return es::fail(ES_ERR_INVALID_ARGUMENT, "es_generate: prompt must not be NULL.");
        Use use(pipeline, "es_generate");
        es_generation_config c = config ? *config : es_generation_default_config();
        es::validate_config(*pipeline->impl, c);
        auto result = std::make_unique<es_result>();
        result->out = es::generate(*pipeline->impl, prompt, c, callback, user_data, &pipeline->cancel);
        if (pipeline->impl->adapt_log) pipeline->impl->adapt_log->record(prompt, result->out.text, pipeline->draft_name, c.temperature);
        std::lock_guard<std::mutex> lock(registry().mu);
        registry().results.insert(result.get());
        *out = result.release();
        return ES_OK;
    });
}

ES_API const char *es_result_text(const es_result *result) { return live_result(result) ? result->out.text.c_str() : nullptr; }

ES_API size_t es_result_text_len(const es_result *result) { return live_result(result) ? result->out.text.size() : 0; }

ES_API const int64_t *es_result_tokens(const es_result *result, size_t *n) {
    if (!live_result(result)) {
        if (n) *n = 0;
        return nullptr;
    }
    if (n) *n = result->out.tokens.size();
    return result->out.tokens.data();
}

ES_API es_status es_result_stats(const es_result *result, es_stats *out) {
    if (!result || !out) return es::fail(ES_ERR_INVALID_ARGUMENT, "es_result_stats: result and out must not be NULL.");
    if (!live_result(result))
        return es::fail(ES_ERR_INVALID_ARGUMENT, "es_result_stats: the result handle is not a live result (freed already?).");
    *out = result->out.stats;
    return ES_OK;
}

ES_API void es_result_free(es_result *result) {
    {
        std::lock_guard<std::mutex> lock(registry().mu);
        if (!result || !registry().results.erase(result)) return;  // NULL, or freed already
    }
    delete result;
}

ES_API es_status es_tokenize(es_pipeline *pipeline, const char *text, int64_t *ids, size_t *n) {
    return es::guard([&]() -> es_status {
        if (!pipeline || !text || !n) return es::fail(ES_ERR_INVALID_ARGUMENT, "es_tokenize: pipeline, text and n must not be NULL.");
        Use use(pipeline, "es_tokenize");
        std::vector<int64_t> tokens = pipeline->impl->tokenizer->encode(text);
        if (!ids) {
            *n = tokens.size();
            return ES_OK;
        }
        if (*n < tokens.size()) {
            *n = tokens.size();
            return es::fail(ES_ERR_BUFFER_TOO_SMALL, "buffer too small: " + std::to_string(tokens.size()) + " ids needed");
        }
        std::copy(tokens.begin(), tokens.end(), ids);
        *n = tokens.size();
        return ES_OK;
    });
}

ES_API es_status es_detokenize(es_pipeline *pipeline, const int64_t *ids, size_t n_ids, char *buf, size_t *size) {
    return es::guard([&]() -> es_status {
        if (!pipeline || !size || (!ids && n_ids))
            return es::fail(ES_ERR_INVALID_ARGUMENT, "es_detokenize: pipeline, ids and size must not be NULL.");
        Use use(pipeline, "es_detokenize");
        size_t vocab = pipeline->impl->target->vocab();
        for (size_t i = 0; i < n_ids; ++i)
            if (ids[i] < 0 || static_cast<size_t>(ids[i]) >= vocab)
                return es::fail(ES_ERR_INVALID_ARGUMENT, "es_detokenize: id " + std::to_string(ids[i]) + " is outside the vocabulary (0.." +
                                                             std::to_string(vocab - 1) + ").");
        return es::copy_out(pipeline->impl->tokenizer->decode(ids, n_ids), buf, size);
    });
}

}  // extern "C"
