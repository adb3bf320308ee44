// The pipeline (models + tokenizer of one bundle) and the decode loop over it.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bundle.hpp"
#include "edgespec.h"
#include "model.hpp"
#include "tokenizer.hpp"

namespace es {

struct PipelineOptions {
    DeviceOptions target, draft;
    std::string draft_name;  // "" = first drafter, "none" = no drafter
    std::string tokenizers_extension;
};

struct Pipeline {
    BundleSpec bundle;
    std::unique_ptr<Model> target;
    std::unique_ptr<Model> draft;   // null when no drafter is loaded
    ModelSpec draft_spec;           // valid when draft is set
    std::vector<int32_t> trim_map;   // trimmed drafter: draft logit index -> target id
    std::vector<int32_t> trim_input; // trimmed drafter: target id -> draft input id (inverse, with fallback)
    std::unique_ptr<Tokenizer> tokenizer;
};

std::unique_ptr<Pipeline> load_pipeline(const std::string &bundle_dir, const PipelineOptions &options);

struct GenerationOutput {
    std::string text;
    std::vector<int64_t> tokens;
    es_stats stats{};
};

// Checks config; throws es::Error(ES_ERR_INVALID_ARGUMENT) with a sentence.
void validate_config(const Pipeline &p, const es_generation_config &config);

// Runs one generation (config already validated). callback may be null.
GenerationOutput generate(Pipeline &p, const std::string &prompt, const es_generation_config &config,
                          es_stream_callback callback, void *user_data);

}  // namespace es
