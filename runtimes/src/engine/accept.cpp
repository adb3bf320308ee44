#include "engine/accept.hpp"

#include <algorithm>

namespace es {

int64_t pick(const float *logits, size_t vocab, const SamplingParams &sp, Rng &rng, std::vector<float> &scratch) {
    if (sp.greedy()) return argmax(logits, vocab);
    sampling_probs(logits, vocab, sp, scratch);
    return sample(scratch.data(), vocab, rng);
}

Verdict accept_drafts(const float *rows, size_t vocab, const int64_t *drafts, size_t m, const float *q, const SamplingParams &sp, Rng &rng,
                      std::vector<float> &p_scratch, std::vector<float> &residual) {
    Verdict v;
    for (; v.accepted < m; ++v.accepted) {
        const float *row = rows + v.accepted * vocab;
        const int64_t d = drafts[v.accepted];
        if (sp.greedy()) {
            const int64_t t = argmax(row, vocab);
            if (t != d) {
                v.bonus = t;
                return v;
            }
            continue;
        }
        sampling_probs(row, vocab, sp, p_scratch);
        const float *q_row = q ? q + v.accepted * vocab : nullptr;
        const float qd = q_row ? q_row[d] : 1.f;
        if (qd > 0.f && rng.uniform() < std::min(1.0, static_cast<double>(p_scratch[static_cast<size_t>(d)]) / qd)) continue;
        v.bonus = residual_probs(p_scratch.data(), q_row, d, vocab, residual) ? sample(residual.data(), vocab, rng)
                                                                              : sample(p_scratch.data(), vocab, rng);
        return v;
    }
    v.bonus = pick(rows + m * vocab, vocab, sp, rng, p_scratch);  // all accepted: the bonus row
    return v;
}

}  // namespace es
