// EAGLE-3 on OpenVINO: the load-time graph transforms that give a target the head's fused
// features and a head its own hidden state (drafting/eagle3.hpp says how the policy uses them).
#pragma once
#include <string>
#include <vector>

#include "backends/openvino/openvino.hpp"
#include "core/bundle.hpp"

namespace es {

// The head's fc weight, taken out of its graph (see above).
struct Eagle3Fc {
    ov::Output<ov::Node> weight;
    bool transpose_a = false, transpose_b = true;
};

// Reads the head IR of spec and returns its fc. Throws ES_ERR_BUNDLE when the graph is not an
// EAGLE-3 export (no MatMul on its hidden_states input).
Eagle3Fc read_eagle3_fc(ov::Core &core, const ModelSpec &spec);

// The target's transform: adds kFeaturesOutput = fc(concat(outputs of decoder layers `layers`)).
GraphTransform eagle3_target_transform(const std::vector<int32_t> &layers, const Eagle3Fc &fc, const std::string &file);

// The head's transform: drops its fc (hidden_states feeds what fc fed), its d2t output, and adds
// kFeaturesOutput (its midlayer's output).
GraphTransform eagle3_head_transform(const std::string &file);

}  // namespace es
