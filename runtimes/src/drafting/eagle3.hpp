// EAGLE-3 heads (docs/eagle3.md): a one-layer head that drafts from the target's own hidden states.
//
// Load time (graph transforms, as OpenVINO GenAI makes them; no second export of the target):
//   the head's IR (optimum-intel's EAGLE-3 export) computes fc([3 target layer outputs]) on its
//   `hidden_states` input. Its fc MatMul moves to the target: the target gains an output
//   kFeaturesOutput = fc(concat(outputs of the three decoder layers the head reads)), [n, H]; the
//   head reads those rows on `hidden_states` directly and gains an output kFeaturesOutput of its
//   own (the midlayer's output before the final norm), which it reads back for its next draft.
//
// Decoding: head position i pairs the target's features at position i with token i + 1 (so the
// head trails the target by one token) and predicts token i + 2. A round feeds the head the pairs
// the target produced since the last round (every target call's accepted rows), drafts the first
// token from the last of them, then feeds (its own hidden state, the token it drafted) for each
// further token; the next round rolls the head's cache back to the real pairs. Draft ids map to
// target ids through the bundle's id map (the checkpoint's d2t); q is the head's distribution
// over its vocabulary, zero outside it, so speculative sampling stays exact.
#pragma once
#include <memory>
#include <vector>

#include "backends/model.hpp"
#include "core/bundle.hpp"
#include "drafting/policy.hpp"

namespace es {

// Reads the little-endian int64 draft id -> target id map of an eagle3 drafter; each id is
// checked against the target vocabulary.
std::vector<int32_t> read_eagle3_map(const ModelSpec &spec, size_t target_vocab);

// The policy: target must have been loaded with eagle3_target_transform, head with
// eagle3_head_transform (stateful backend); id_map has one target id per head logit.
std::unique_ptr<Policy> make_eagle3_policy(Model &target, Model &head, const std::vector<int32_t> &id_map, const DraftContext &ctx);

}  // namespace es
