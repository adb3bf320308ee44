// Drafting policies behind one interface (begin / propose / accept), so the decode loop never
// branches on which one runs. Every policy proposes tokens already in the TARGET vocabulary,
// with the distributions they were drawn from (speculative sampling needs q).
//
//   NullPolicy        proposes nothing: plain autoregressive decoding (the baseline).
//   DraftModelPolicy  a second LM with the target's vocabulary, with its own KV cache.
//   (trimmed)         DraftModelPolicy + an id map: a VocabTrim drafter's LM head keeps only
//                     some target ids (its input embedding is the target's vocabulary); its q
//                     over kept ids is scattered into the target vocabulary (zero elsewhere),
//                     which keeps speculative sampling lossless.
//   NgramPolicy       prompt lookup: the continuation of the latest earlier occurrence of the
//                     context's last n tokens (n = 3, 2, 1); deterministic, so q is one-hot.
//                     (Beside a drafter the loop itself runs a stricter lookup, n = 4 or 3, each
//                     round before asking the drafter: engine.cpp, es_generation_config.lookup.)
//   CrossVocabPolicy  (cross_vocab.hpp) a drafter with its own vocabulary and tokenizer: drafts
//                     greedily in its ids, and the drafted text is re-tokenized into target ids;
//                     deterministic, so q is one-hot. propose() receives the whole committed
//                     context, so it rolls its own cache back to any point (Model::rollback(n)
//                     takes any n <= n_past()).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "backends/model.hpp"
#include "core/sampling.hpp"
#include "edgespec.h"

namespace es {

struct Proposal {
    std::vector<int64_t> tokens;  // proposed target ids, at most k
    // Dense target-vocabulary rows q_i the tokens were drawn from: tokens.size() * vocab floats.
    // Empty = a deterministic proposer (q_i is one-hot at tokens[i]).
    std::vector<float> q;
    // The drafter's probability of each token it drafted (a policy that reports confidence); may
    // run longer than tokens when the loop verifies only a prefix of what was drafted.
    std::vector<float> conf;
    // Of the round's drafting time, what the drafter spent reading context it had fallen behind on
    // (the prompt, tokens committed while drafting was off) beyond a normal round's catch-up: a
    // sunk cost that says nothing about what a drafted token costs, so adaptive k does not see it.
    double catchup_ms = 0;
    // The whole of the drafter's calls this round that read context it had not seen (the prompt,
    // a window's recent part after a slide, tokens committed while drafting was off), and the
    // tokens they read: es_stats.draft_prefill_ms / draft_prefill_tokens.
    double prefill_ms = 0;
    size_t prefill_tokens = 0;
    void clear() {
        tokens.clear();
        q.clear();
        conf.clear();
        catchup_ms = 0;
        prefill_ms = 0;
        prefill_tokens = 0;
    }
};

// A windowed drafter (draft_window) keeps reading the first this many of its tokens (attention
// sinks, as in StreamingLLM) besides the latest ones.
constexpr size_t kDraftSinkTokens = 4;

// What a policy may read during a generation (owned by the loop, outlives the policy).
class DraftLengthController;

struct DraftContext {
    SamplingParams sampling;
    Rng *rng = nullptr;
    size_t target_vocab = 0;
    float stop_prob = 0.f;     // draft stops early when its top-1 probability falls below this
    int32_t draft_window = 0;  // the most context tokens a drafter model reads (0: all its context holds)
    // Adaptive k with confidences: asked after each drafted token whether to draft another.
    const DraftLengthController *length = nullptr;
};

class Policy {
public:
    virtual ~Policy() = default;
    // A new generation starts from prompt (target ids).
    virtual void begin(const std::vector<int64_t> &prompt) = 0;
    // Proposes up to k (>= 1) tokens continuing context (every committed target id so far).
    virtual void propose(const std::vector<int64_t> &context, int k, Proposal &out) = 0;
    // The target accepted n_accepted of the last proposals; emitted = those + the bonus token.
    virtual void accept(size_t n_accepted, const std::vector<int64_t> &emitted) = 0;
    // The target verified a round this policy did not propose (prompt lookup beside a drafter):
    // n_accepted of its proposals were accepted; emitted = those + the bonus token.
    virtual void observe(size_t n_accepted, const std::vector<int64_t> &emitted) { (void)n_accepted, (void)emitted; }
    // Times a draft cache was compacted (stats).
    virtual int64_t compactions() const { return 0; }
    // Whether propose() fills Proposal::conf (then adaptive k decides per token from it).
    virtual bool confident() const { return false; }
    // Adds the policy's own figures to the generation's stats (at its end).
    virtual void add_stats(es_stats &) const {}
};

// One drafted token from a drafter's logits row (dv wide), the i-th of a round: greedy or sampled
// per ctx, its confidence and (sampling) its q row in the target vocabulary through id_map (empty:
// draft ids are target ids) appended to out. Returns the target id, or -1 where the round stops
// before it (ctx.stop_prob; never at i == 0).
int64_t draft_token(const float *logits, size_t dv, const std::vector<int32_t> &id_map, const DraftContext &ctx, int i, Proposal &out,
                    std::vector<float> &probs);

// Whether the round drafts one more token after out's: always, but under adaptive k's confidence
// rule. Asked before the drafter's next call, so that a round never pays for a token it drops.
bool draft_more(const DraftContext &ctx, const Proposal &out);

// Prompt lookup: finds the latest earlier occurrence of the context's last n tokens (n from
// max_n down to min_n) and puts up to k of the tokens that followed it in out. Returns that n
// (0: no occurrence; out is then empty).
int prompt_lookup(const std::vector<int64_t> &context, int min_n, int max_n, size_t k, std::vector<int64_t> &out);
// The n-gram lengths prompt lookup beside a drafter matches (es_generation_config.lookup): a
// shorter match is too often a coincidence to beat the drafter.
constexpr int kLookupMinN = 3, kLookupMaxN = 4;

std::unique_ptr<Policy> make_null_policy();
// id_map (may be empty): draft logit index -> target id, for trimmed drafters; input_map (empty
// or one entry per target id): the draft id fed for a target id.
std::unique_ptr<Policy> make_draft_model_policy(Model &draft, const std::vector<int32_t> &id_map, const std::vector<int32_t> &input_map,
                                                size_t draft_context, const DraftContext &ctx);
std::unique_ptr<Policy> make_ngram_policy(int max_n = 3);

}  // namespace es
