// Step 3 of the loop, the accept rule, as pure functions (the same rule as accept() in
// edgespec/reference.py, the numpy oracle the tests compare against).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/sampling.hpp"

namespace es {

// The next token from one logits row: its argmax (greedy), or a draw from the sampling
// distribution. scratch: reused buffer (size vocab after the call).
int64_t pick(const float *logits, size_t vocab, const SamplingParams &sp, Rng &rng, std::vector<float> &scratch);

struct Verdict {
    size_t accepted = 0;  // how many of the drafts the target accepts (a prefix)
    int64_t bonus = -1;   // the token emitted after them
};

// rows: m + 1 target logits rows [m + 1, vocab] for [last committed token, drafts]; drafts[0..m);
// q: the m rows [m, vocab] of the distribution the drafts were drawn from, or nullptr when the
// proposer is deterministic (q one-hot at the draft).
// Greedy: the longest prefix of the drafts that matches the target's argmax, then the argmax.
// Sampling: accept d_i with probability min(1, p_i(d_i) / q_i(d_i)); at the first rejection draw
// from norm(max(0, p_i - q_i)); after m acceptances draw the bonus from row m. The output
// distribution is then the target's. p_scratch, residual: reused buffers.
Verdict accept_drafts(const float *rows, size_t vocab, const int64_t *drafts, size_t m, const float *q, const SamplingParams &sp, Rng &rng,
                      std::vector<float> &p_scratch, std::vector<float> &residual);

}  // namespace es
