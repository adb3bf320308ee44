// Unit test of the accept rule (engine/accept.cpp) on hand-made logits, no model:
//   greedy accepts exactly the prefix that matches each row's argmax and emits that argmax;
//   speculative sampling's output distribution equals the target's, whatever q proposed.
#include <cmath>
#include <vector>

#include "check.hpp"
#include "engine/accept.hpp"

using namespace es;

static std::vector<float> rows_with_argmax(const std::vector<int64_t> &argmaxes, size_t vocab) {
    std::vector<float> rows(argmaxes.size() * vocab, 0.f);
    for (size_t r = 0; r < argmaxes.size(); ++r) rows[r * vocab + static_cast<size_t>(argmaxes[r])] = 5.f;
    return rows;
}

static void greedy_accepts_the_matching_prefix() {
    const size_t vocab = 8;
    const SamplingParams greedy{};
    Rng rng(1);
    std::vector<float> p, res;
    const auto rows = rows_with_argmax({3, 1, 4, 1}, vocab);  // m = 3 drafts + the bonus row
    const int64_t all[] = {3, 1, 4}, second_wrong[] = {3, 2, 4}, first_wrong[] = {0, 1, 4};
    Verdict v = accept_drafts(rows.data(), vocab, all, 3, nullptr, greedy, rng, p, res);
    CHECK(v.accepted == 3 && v.bonus == 1, "all right: accepted %zu bonus %lld", v.accepted, (long long)v.bonus);
    v = accept_drafts(rows.data(), vocab, second_wrong, 3, nullptr, greedy, rng, p, res);
    CHECK(v.accepted == 1 && v.bonus == 1, "second wrong: accepted %zu bonus %lld", v.accepted, (long long)v.bonus);
    v = accept_drafts(rows.data(), vocab, first_wrong, 3, nullptr, greedy, rng, p, res);
    CHECK(v.accepted == 0 && v.bonus == 3, "first wrong: accepted %zu bonus %lld", v.accepted, (long long)v.bonus);
    v = accept_drafts(rows.data(), vocab, nullptr, 0, nullptr, greedy, rng, p, res);
    CHECK(v.accepted == 0 && v.bonus == 3, "no drafts: a plain step, got %lld", (long long)v.bonus);
}

// One draft from q, then the first emitted token: its frequencies must follow p (the target's
// softmax), for a q far from p and for a deterministic (one-hot) proposer.
static void sampling_keeps_the_target_distribution() {
    const size_t vocab = 4;
    const float logits[] = {1.0f, 0.2f, -0.5f, 0.7f, /* bonus row */ 0.f, 0.f, 0.f, 0.f};
    const SamplingParams sp{1.0f, 0, 1.0f};
    double p[vocab], z = 0;
    for (size_t i = 0; i < vocab; ++i) z += (p[i] = std::exp(static_cast<double>(logits[i])));
    for (double &x : p) x /= z;
    const std::vector<float> q = {0.05f, 0.6f, 0.3f, 0.05f};
    for (int one_hot = 0; one_hot < 2; ++one_hot) {
        Rng rng(7);
        std::vector<float> ps, res;
        const int n = 200000;
        double counts[vocab] = {0, 0, 0, 0};
        for (int i = 0; i < n; ++i) {
            // draw the draft from q (or always token 2 for the one-hot proposer)
            int64_t d = 2;
            if (!one_hot) {
                double u = rng.uniform(), c = 0;
                for (d = 0; d < static_cast<int64_t>(vocab) - 1; ++d)
                    if ((c += q[static_cast<size_t>(d)]) > u) break;
            }
            const Verdict v = accept_drafts(logits, vocab, &d, 1, one_hot ? nullptr : q.data(), sp, rng, ps, res);
            counts[v.accepted ? d : v.bonus] += 1;
        }
        double chi2 = 0;
        for (size_t i = 0; i < vocab; ++i) chi2 += std::pow(counts[i] - n * p[i], 2) / (n * p[i]);
        // 3 degrees of freedom: chi2 > 16.27 has probability 0.001 under the target distribution.
        CHECK(chi2 < 16.27, "%s proposer: chi-square %.2f against the target distribution", one_hot ? "one-hot" : "q", chi2);
    }
}

int main() {
    greedy_accepts_the_matching_prefix();
    sampling_keeps_the_target_distribution();
    std::printf(failures ? "%d failure(s)\n" : "all accept-rule checks passed\n", failures);
    return failures ? 1 : 0;
}
