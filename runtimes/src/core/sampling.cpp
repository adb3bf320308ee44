#include "core/sampling.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace es {

int64_t argmax(const float *logits, size_t n) {
    size_t best = 0;
    for (size_t i = 1; i < n; ++i)
        if (logits[i] > logits[best]) best = i;
    return static_cast<int64_t>(best);
}

float top1_prob(const float *logits, size_t n) {
    float mx = logits[argmax(logits, n)];
    double sum = 0;
    for (size_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(logits[i] - mx));
    return static_cast<float>(1.0 / sum);
}

void sampling_probs(const float *logits, size_t n, const SamplingParams &params, std::vector<float> &out) {
    out.assign(n, 0.f);
    std::vector<int32_t> idx(n);
    std::iota(idx.begin(), idx.end(), 0);
    auto by_logit = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
    // top-k: keep the k largest logits (nth_element: O(n), no full sort).
    if (params.top_k > 0 && static_cast<size_t>(params.top_k) < n) {
        std::nth_element(idx.begin(), idx.begin() + params.top_k, idx.end(), by_logit);
        idx.resize(params.top_k);
    }
    const double inv_t = 1.0 / std::max(params.temperature, 1e-6f);
    float mx = logits[idx[0]];
    for (int32_t i : idx) mx = std::max(mx, logits[i]);
    double sum = 0;
    for (int32_t i : idx) {
        double e = std::exp((static_cast<double>(logits[i]) - mx) * inv_t);
        out[i] = static_cast<float>(e);
        sum += e;
    }
    for (int32_t i : idx) out[i] = static_cast<float>(out[i] / sum);
    if (params.top_p >= 1.f) return;
    // top-p: the smallest most-likely set with mass >= top_p. Sort progressively larger heads
    // (64, 256, ...) instead of the whole vocabulary: the nucleus is usually small.
    size_t head = std::min<size_t>(64, idx.size());
    size_t keep = idx.size();
    while (true) {
        std::partial_sort(idx.begin(), idx.begin() + head, idx.end(), by_logit);
        double cum = 0;
        size_t j = 0;
        for (; j < head; ++j) {
            cum += out[idx[j]];
            if (cum >= params.top_p) break;
        }
        if (j < head) {
            keep = j + 1;
            break;
        }
        if (head == idx.size()) break;
        head = std::min(idx.size(), head * 4);
    }
    double kept = 0;
    for (size_t j = 0; j < keep; ++j) kept += out[idx[j]];
    for (size_t j = keep; j < idx.size(); ++j) out[idx[j]] = 0.f;
    for (size_t j = 0; j < keep; ++j) out[idx[j]] = static_cast<float>(out[idx[j]] / kept);
}

int64_t sample(const float *probs, size_t n, Rng &rng) {
    double r = rng.uniform();
    double cum = 0;
    int64_t last_nonzero = 0;
    for (size_t i = 0; i < n; ++i) {
        if (probs[i] <= 0.f) continue;
        cum += probs[i];
        last_nonzero = static_cast<int64_t>(i);
        if (r < cum) return last_nonzero;
    }
    return last_nonzero;  // rounding: r fell beyond the accumulated mass
}

bool residual_probs(const float *p, const float *q, int64_t q_token, size_t n, std::vector<float> &out) {
    out.resize(n);
    double sum = 0;
    for (size_t i = 0; i < n; ++i) {
        float qi = q ? q[i] : (static_cast<int64_t>(i) == q_token ? 1.f : 0.f);
        float r = std::max(0.f, p[i] - qi);
        out[i] = r;
        sum += r;
    }
    if (sum <= 0) return false;
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(out[i] / sum);
    return true;
}

}  // namespace es
