#include "draft_length.hpp"

#include <algorithm>
#include <cmath>

namespace es {

namespace {
constexpr double kCostWeight = 0.3;  // weight of a new measurement in the cost averages
constexpr double kDecay = 0.9;       // per round, of the acceptance counts (~10 rounds of memory)
constexpr int kProbeFirst = 8;       // rounds at k = 0 before a drafting round probes again,
constexpr int kProbeMax = 128;       // doubling after every probe that finds drafting still does not pay
}  // namespace

void CallCosts::record_verify(size_t n, double ms) {
    if (n == 0 || !(ms > 0)) return;
    if (verify_ms.size() <= n) verify_ms.resize(n + 1, 0.0);
    double &v = verify_ms[n];
    v = v > 0 ? (1 - kCostWeight) * v + kCostWeight * ms : ms;
}

double CallCosts::verify(size_t n) const {
    // Nearest measured lengths below and above n.
    size_t lo = 0, hi = 0;
    for (size_t i = 1; i < verify_ms.size(); ++i) {
        if (verify_ms[i] <= 0) continue;
        if (i <= n) lo = i;
        if (i >= n && !hi) hi = i;
    }
    if (lo && lo == n) return verify_ms[n];
    if (lo && hi) return verify_ms[lo] + (verify_ms[hi] - verify_ms[lo]) * double(n - lo) / double(hi - lo);
    // Outside the measured range, optimistic guesses (so that the length gets tried once and is
    // measured): beyond the largest, no dearer than it; below the smallest, cheaper in proportion.
    if (lo) return verify_ms[lo];
    if (hi) return verify_ms[hi] * double(n) / double(hi);
    return 0;
}

DraftLengthController::DraftLengthController(int k, int k_max, CallCosts *costs)
    : adaptive_(k < 0), k_(k < 0 ? std::min(4, k_max) : k), k_max_(k < 0 ? k_max : k), costs_(costs) {
    if (adaptive_ && costs_ && costs_->verify(1) > 0) k_ = choose();  // a later generation: start from what was learned
}

double DraftLengthController::rate(int k) const {
    const double a = acceptance();
    double expected = 0, p = 1;
    for (int i = 0; i <= k; ++i, p *= a) expected += p;
    if (!costs_) return expected / (1.0 + k);  // no costs: every call costs the same
    const double cost = k * draft_ms_ + costs_->verify(static_cast<size_t>(k) + 1);
    return cost > 0 ? expected / cost : 0;
}

int DraftLengthController::choose() const {
    if (!costs_ || costs_->verify(1) <= 0) return k_;
    int best = 0;
    for (int k = 1; k <= k_max_; ++k)
        if (rate(k) > rate(best) * 1.0001) best = k;
    return best;
}

void DraftLengthController::update(int proposed, int accepted, double draft_ms, double verify_ms) {
    if (costs_) costs_->record_verify(static_cast<size_t>(proposed) + 1, verify_ms);
    if (proposed > 0 && draft_ms >= 0) {
        const double per = draft_ms / proposed;
        draft_ms_ = draft_ms_ > 0 ? (1 - kCostWeight) * draft_ms_ + kCostWeight * per : per;
    }
    if (!adaptive_) return;
    if (proposed > 0) {
        acc_ = kDecay * acc_ + accepted;
        rej_ = kDecay * rej_ + (accepted < proposed ? 1 : 0);
    }
    if (!costs_) {
        // Without costs: everything accepted, draft further; less than half, draft less.
        if (proposed == 0) return;
        if (accepted == proposed) k_ = std::min(k_ + 1, k_max_);
        else if (2 * accepted < proposed) k_ = std::max(k_ - 1, 1);
        return;
    }
    const bool was_probe = probe_;
    probe_ = false;
    k_ = choose();
    if (k_ > 0) {
        if (!was_probe) backoff_ = 0;  // drafting pays again: forget the back-off
        return;
    }
    if (was_probe || backoff_ == 0) {  // drafting (still) does not pay: wait longer before the next probe
        backoff_ = backoff_ ? std::min(2 * backoff_, kProbeMax) : kProbeFirst;
        rounds_at_zero_ = 0;
    }
    if (++rounds_at_zero_ >= backoff_) {  // acceptance is only learnt while drafting: probe with k = 1
        rounds_at_zero_ = 0;
        k_ = 1;
        probe_ = true;
    }
}

}  // namespace es
