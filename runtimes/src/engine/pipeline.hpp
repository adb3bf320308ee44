// A pipeline: the models, tokenizer and drafting state of one bundle, loaded once and shared by
// its generations (engine/engine.hpp runs the loop over it).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "backends/model.hpp"
#include "core/bundle.hpp"
#include "drafting/cross_vocab.hpp"
#include "drafting/draft_length.hpp"
#include "engine/adapt_log.hpp"
#include "text/token_table.hpp"
#include "text/tokenizer.hpp"

namespace es {

struct PipelineOptions {
    DeviceOptions target, draft;
    std::string draft_name;  // "" = the default drafter (see load_pipeline), "none" = no drafter
    std::string tokenizers_extension;
    bool verify = true;                 // check the files' digests (sizes are always checked) when the manifest has them
    std::string translation_cache_dir;  // cross_vocab drafters: where the translation cache persists ("" = nowhere)
    std::string adapt_log_dir;          // "" = no adaptation log
};

struct Pipeline {
    BundleSpec bundle;
    std::unique_ptr<Model> target;
    std::unique_ptr<Model> draft;     // null when no drafter is loaded
    ModelSpec draft_spec;             // valid when draft is set
    std::vector<int32_t> trim_map;    // trimmed drafter: draft logit index -> target id
    std::vector<int32_t> trim_input;  // trimmed drafter: target id -> draft input id (inverse, with fallback)
    std::vector<int32_t> eagle3_map;  // eagle3 head: draft logit index -> target id
    std::unique_ptr<Tokenizer> tokenizer;
    std::unique_ptr<CrossVocab> xvocab;      // cross_vocab drafter: its tokenizer, byte tables, caches
    std::unique_ptr<TokenTable> text_table;  // the target's byte table, when it spells text as the detokenizer does
    std::unique_ptr<AdaptLog> adapt_log;     // opt-in record of committed text (null = off)
    CallCosts costs;                         // measured target-call costs by length (adaptive k)
    double integrity_ms = 0;                 // time the load spent checking the files' sizes and digests
};

// Loads the bundle's target and one drafter: the one named, or by default the first same_vocab,
// trimmed or eagle3 drafter, else the first cross_vocab drafter the bundle has byte tables for (bundles
// exported before token_bytes.bin existed then load without a drafter, as they always did).
std::unique_ptr<Pipeline> load_pipeline(const std::string &bundle_dir, const PipelineOptions &options);

}  // namespace es
