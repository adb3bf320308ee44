// The decode loop over a loaded pipeline (engine/pipeline.hpp).
#pragma once
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "edgespec.h"
#include "engine/pipeline.hpp"

namespace es {

struct GenerationOutput {
    std::string text;
    std::vector<int64_t> tokens;
    es_stats stats{};
};

// Checks config; throws es::Error(ES_ERR_INVALID_ARGUMENT) with a sentence.
void validate_config(const Pipeline &p, const es_generation_config &config);

// Runs one generation (config already validated). callback may be null. cancel (may be null) is
// read between model calls: once set, generate throws es::Error(ES_ERR_CANCELLED). (A model call
// in flight is interrupted through Model::cancel(), which es_cancel calls beside setting it.)
GenerationOutput generate(Pipeline &p, const std::string &prompt, const es_generation_config &config, es_stream_callback callback,
                          void *user_data, const std::atomic<bool> *cancel = nullptr);

}  // namespace es
