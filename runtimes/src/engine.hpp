// The pipeline (models + tokenizer of one bundle) and the decode loop over it.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bundle.hpp"
#include "cross_vocab.hpp"
#include "draft_length.hpp"
#include "edgespec.h"
#include "model.hpp"
#include "tokenizer.hpp"

namespace es {

struct PipelineOptions {
    DeviceOptions target, draft;
    std::string draft_name;  // "" = the default drafter (see load_pipeline), "none" = no drafter
    std::string tokenizers_extension;
};

struct Pipeline {
    BundleSpec bundle;
    std::unique_ptr<Model> target;
    std::unique_ptr<Model> draft;   // null when no drafter is loaded
    ModelSpec draft_spec;           // valid when draft is set
    std::vector<int32_t> trim_map;   // trimmed drafter: draft logit index -> target id
    std::vector<int32_t> trim_input; // trimmed drafter: target id -> draft input id (inverse, with fallback)
    std::vector<int32_t> eagle3_map; // eagle3 head: draft logit index -> target id
    std::unique_ptr<Tokenizer> tokenizer;
    std::unique_ptr<CrossVocab> xvocab;  // cross_vocab drafter: its tokenizer, byte tables, caches
    std::unique_ptr<TokenTable> text_table;  // the target's byte table, when it spells text as the detokenizer does
    CallCosts costs;                     // measured target-call costs by length (adaptive k)
};

// Loads the bundle's target and one drafter: the one named, or by default the first same_vocab,
// trimmed or eagle3 drafter, else the first cross_vocab drafter the bundle has byte tables for (bundles
// exported before token_bytes.bin existed then load without a drafter, as they always did).
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
