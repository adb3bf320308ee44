// The maths of the decode loop, as small pure functions: argmax, the sampling distribution
// (temperature, top-k, top-p), drawing from it, and the speculative-sampling residual.
#pragma once
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace es {

struct SamplingParams {
    float temperature = 0.f;  // 0 = greedy
    int32_t top_k = 0;        // 0 = all tokens
    float top_p = 1.f;        // nucleus mass in (0, 1]
    bool greedy() const { return temperature <= 0.f; }
};

// Seeded generator; uniform() is platform independent (53 random bits of mt19937_64).
struct Rng {
    std::mt19937_64 engine;
    explicit Rng(uint64_t seed = 0) : engine(seed) {}
    double uniform() { return static_cast<double>(engine() >> 11) * (1.0 / 9007199254740992.0); }
};

// Index of the largest logit (the first one on ties, like numpy.argmax / torch.argmax).
int64_t argmax(const float *logits, size_t n);

// Softmax probability of the most likely token at temperature 1 (a drafter's confidence).
float top1_prob(const float *logits, size_t n);

// The distribution sampling draws from: softmax(logits / T) restricted to the top_k tokens and
// then to the smallest set whose mass reaches top_p, renormalised. out is dense (size n).
void sampling_probs(const float *logits, size_t n, const SamplingParams &params, std::vector<float> &out);

// Draws an index from a (normalised) dense distribution by inverse CDF.
int64_t sample(const float *probs, size_t n, Rng &rng);

// Speculative-sampling residual norm(max(0, p - q)) into out (dense, size n). q == nullptr
// means q is one-hot at q_token (a deterministic proposer). Returns false when the residual
// has no mass (p <= q everywhere, which happens only if p == q); callers then draw from p.
bool residual_probs(const float *p, const float *q, int64_t q_token, size_t n, std::vector<float> &out);

}  // namespace es
