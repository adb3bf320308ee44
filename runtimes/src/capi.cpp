// The C ABI of pipelines and generation: argument checks, es::guard around every entry point,
// and the opaque handles that own C++ objects.
#include <cstdio>
#include <cstring>

#include "edgespec.h"
#include "engine.hpp"
#include "error.hpp"

struct es_pipeline {
    std::unique_ptr<es::Pipeline> impl;
    std::string draft_name;
    std::string info;  // es_pipeline_info
};

struct es_result {
    es::GenerationOutput out;
};

namespace {

std::string str_or(const char *s, const char *fallback) { return s ? std::string(s) : std::string(fallback); }

std::string json_string(const std::string &s) {
    std::string out = "\"";
    for (char ch : s) {
        const unsigned char c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') out += '\\', out += ch;
        else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else out += ch;
    }
    return out + "\"";
}

std::string json_widths(const std::vector<size_t> &widths) {
    std::string s = "[";
    for (size_t w : widths) s += (s.size() > 1 ? ", " : "") + std::to_string(w);
    return s + "]";
}

std::string json_model(const es::Model &m, const es::DeviceOptions &o) {
    return "\"backend\": " + json_string(m.backend()) + ", \"device\": " + json_string(o.device) +
           ", \"fixed_widths\": " + json_widths(m.fixed_widths()) + ", \"split_widths\": " + json_widths(m.split_widths()) + "}";
}

std::string pipeline_info(const es::Pipeline &p, const es::PipelineOptions &o) {
    std::string s = "{\"target\": {" + json_model(*p.target, o.target) + ", \"draft\": ";
    if (p.draft)
        s += "{\"name\": " + json_string(p.draft_spec.name) + ", \"kind\": " + json_string(p.draft_spec.relation) + ", " +
             json_model(*p.draft, o.draft);
    else
        s += "null";
    return s + ", \"text\": " + json_string(p.text_table ? "byte-table" : "detokenizer") + "}";
}

}  // namespace

extern "C" {

ES_API es_pipeline_params es_pipeline_default_params(void) {
    es_pipeline_params p;
    std::memset(&p, 0, sizeof p);
    p.device = "CPU";
    p.fixed_shapes = -1;
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
            return es::fail(ES_ERR_INVALID_ARGUMENT, "fixed_shapes must be -1 (auto), 0 (off) or 1 (on) (got " + std::to_string(p.fixed_shapes) + ").");
        es::PipelineOptions o;
        o.target.device = str_or(p.device, "CPU");
        o.target.precision = str_or(p.precision, "");
        o.target.kv_precision = str_or(p.kv_precision, "");
        o.target.threads = p.num_threads;
        o.target.backend = str_or(p.backend, "openvino");
        if (o.target.backend != "openvino" && o.target.backend != "openvino-paged" && o.target.backend != "openvino-stateful" &&
            o.target.backend != "onnxruntime")
            return es::fail(ES_ERR_INVALID_ARGUMENT, "Unknown backend '" + o.target.backend +
                                                         "'; use openvino, openvino-paged, openvino-stateful or onnxruntime.");
        o.target.ort_library = str_or(p.ort_library, "");
        o.target.fixed_shapes = p.fixed_shapes;
        o.draft = o.target;
        if (p.draft_device) o.draft.device = p.draft_device;
        o.draft_name = str_or(p.draft, "");
        o.tokenizers_extension = str_or(p.tokenizers_extension, "");
        auto handle = std::make_unique<es_pipeline>();
        handle->impl = es::load_pipeline(bundle_dir, o);
        if (handle->impl->draft) handle->draft_name = handle->impl->draft_spec.name;
        handle->info = pipeline_info(*handle->impl, o);
        *out = handle.release();
        return ES_OK;
    });
}

ES_API void es_pipeline_free(es_pipeline *pipeline) { delete pipeline; }

ES_API int64_t es_pipeline_context_length(const es_pipeline *pipeline) {
    return pipeline ? pipeline->impl->bundle.target.context_length : 0;
}

ES_API const char *es_pipeline_draft_name(const es_pipeline *pipeline) { return pipeline ? pipeline->draft_name.c_str() : ""; }

ES_API const char *es_pipeline_info(const es_pipeline *pipeline) { return pipeline ? pipeline->info.c_str() : ""; }

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
    return c;
}

ES_API es_status es_generate(es_pipeline *pipeline, const char *prompt, const es_generation_config *config,
                             es_stream_callback callback, void *user_data, es_result **out) {
    return es::guard([&]() -> es_status {
        if (!out) return es::fail(ES_ERR_INVALID_ARGUMENT, "es_generate: out must not be NULL.");
        *out = nullptr;
        if (!pipeline) return es::fail(ES_ERR_INVALID_ARGUMENT, "es_generate: pipeline must not be NULL.");
        if (!prompt) return es::fail(ES_ERR_INVALID_ARGUMENT, "es_generate: prompt must not be NULL.");
        es_generation_config c = config ? *config : es_generation_default_config();
        es::validate_config(*pipeline->impl, c);
        auto result = std::make_unique<es_result>();
        result->out = es::generate(*pipeline->impl, prompt, c, callback, user_data);
        *out = result.release();
        return ES_OK;
    });
}

ES_API const char *es_result_text(const es_result *result) { return result ? result->out.text.c_str() : nullptr; }

ES_API size_t es_result_text_len(const es_result *result) { return result ? result->out.text.size() : 0; }

ES_API const int64_t *es_result_tokens(const es_result *result, size_t *n) {
    if (!result) {
        if (n) *n = 0;
        return nullptr;
    }
    if (n) *n = result->out.tokens.size();
    return result->out.tokens.data();
}

ES_API es_status es_result_stats(const es_result *result, es_stats *out) {
    if (!result || !out) return es::fail(ES_ERR_INVALID_ARGUMENT, "es_result_stats: result and out must not be NULL.");
    *out = result->out.stats;
    return ES_OK;
}

ES_API void es_result_free(es_result *result) { delete result; }

ES_API es_status es_tokenize(es_pipeline *pipeline, const char *text, int64_t *ids, size_t *n) {
    return es::guard([&]() -> es_status {
        if (!pipeline || !text || !n) return es::fail(ES_ERR_INVALID_ARGUMENT, "es_tokenize: pipeline, text and n must not be NULL.");
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
        size_t vocab = pipeline->impl->target->vocab();
        for (size_t i = 0; i < n_ids; ++i)
            if (ids[i] < 0 || static_cast<size_t>(ids[i]) >= vocab)
                return es::fail(ES_ERR_INVALID_ARGUMENT, "es_detokenize: id " + std::to_string(ids[i]) + " is outside the vocabulary (0.." +
                                                             std::to_string(vocab - 1) + ").");
        return es::copy_out(pipeline->impl->tokenizer->decode(ids, n_ids), buf, size);
    });
}

}  // extern "C"
