// Draft length: fixed, or chosen each round for the most tokens per second.
//
// Adaptive k (the default, k = -1) picks the k in [0, k_max] that maximises
//
//     rate(k) = E(k) / (k * t_draft + t_verify(k + 1)),   E(k) = 1 + a + a^2 + ... + a^k,
//
// the expected tokens one round yields over what it costs, where a is the per-token acceptance
// probability (accepted / (accepted + rejections), decayed so that it follows the text), t_draft
// the cost of one drafted token, and t_verify(n) the cost of a target call over n tokens. The
// costs are measured, not assumed: what a verify call of n tokens costs depends on the device
// (on a CPU without int8 dot products a 5-token call costs ~2.5 decode steps, on a GPU about
// one), and the curve is kept per pipeline so later generations start from it. k = 0 is plain
// decoding: when drafting does not pay on this device and text, the controller stops drafting
// and probes with k = 1 after 8 plain rounds, then after 16, 32, ... 128 while probes keep
// finding that drafting does not pay.
//
// Unmeasured lengths are estimated from the measured ones: linear between them, and optimistic
// outside (flat beyond the largest, proportional below the smallest), so an unmeasured length
// gets tried once and from then on costs what it measured.
#pragma once
#include <cstddef>
#include <vector>

namespace es {

// Measured cost of a target call by number of tokens (ms, exponentially averaged). Lives as long
// as the pipeline (the cost of a drafted token depends on the policy: each generation measures it).
struct CallCosts {
    std::vector<double> verify_ms;  // index n: a call over n tokens; 0 = not measured yet
    void record_verify(size_t n, double ms);
    // Estimated cost of a call over n tokens (n >= 1); 0 when nothing was measured.
    double verify(size_t n) const;
};

class DraftLengthController {
public:
    // k >= 1: fixed; k == -1: adaptive within [0, k_max], learning into costs (may be null: then
    // adaptive k uses only the acceptance history).
    DraftLengthController(int k, int k_max, CallCosts *costs = nullptr);
    int k() const { return k_; }
    // After a round: proposed draft tokens, how many the target accepted, and what it cost.
    void update(int proposed, int accepted, double draft_ms, double verify_ms);
    // Expected tokens per ms of a round drafting k (for tests and stats).
    double rate(int k) const;
    double acceptance() const { return (acc_ + 1.0) / (acc_ + rej_ + 2.0); }

private:
    int choose() const;
    bool adaptive_;
    int k_, k_max_;
    CallCosts *costs_;
    double acc_ = 0, rej_ = 0;  // decayed counts of accepted tokens and of rejections
    double draft_ms_ = 0;       // per drafted token, averaged; 0 = not measured yet
    int rounds_at_zero_ = 0;  // plain rounds since drafting stopped or last probed
    int backoff_ = 0;         // plain rounds between probes at k = 0 (0: drafting pays)
    bool probe_ = false;      // the current k = 1 is a probe
};

}  // namespace es
