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
//
// With a drafter that reports its confidence (DraftModelPolicy: its probability of each token it
// drafts), adaptive k decides per round and per token instead of from the average acceptance:
//
//   * a Calibration learns f(c), how often a drafted token of confidence c is accepted (given the
//     tokens before it were), per pipeline, starting from f(c) = c and optimistic while it has
//     few tests (so an underconfident drafter still gets verified, and learnt);
//   * the drafter keeps drafting while the next token is expected to pay for its draft call:
//     P_j = f(c_1)...f(c_j) is the chance that all j drafted tokens are accepted; token j + 1 adds
//     P_j f(c_{j+1}) if verified, which costs t_verify(j + 2) - t_verify(j + 1) more, and it is
//     verified only where that pays, so it is worth E[max(0, P_j f(c) - lambda * that)] over the
//     confidences the drafter has shown (P_j - lambda * that, a sure token, until it has shown
//     some), against lambda * t_draft. (A dear drafter, such as an EAGLE-3 head whose step
//     costs a tenth of a target step, stops where a sure token would still be drafted.)
//   * of what was drafted, the round verifies the prefix j that maximises E(j) - lambda * t_verify(j + 1),
//     E(j) = 1 + P_1 + ... + P_j, lambda = tokens per ms the generation gets otherwise (its
//     running rate, at least plain decoding's 1 / t_verify(1)): the renewal-reward rule for the
//     most tokens per second.
//
// So a round with an unsure drafter verifies nothing extra (plain decoding at the price of one
// draft call) and a sure run of tokens is verified in full. Drafting stops (k = 0, with the probes
// above, which draft as far as a normal round) when even a sure token cannot pay for its draft call
// and longer verify (a drafter as dear as the target), and when the rounds that ran the drafter
// were, on average, expected to yield fewer tokens than plain decoding would have in their time (a
// cheap drafter that is seldom sure, or sure and wrong, costs its draft calls and gains nothing).
#pragma once
#include <cstddef>
#include <vector>

namespace es {

// Measured cost of a target call by number of tokens (ms, exponentially averaged). Lives as long
// as the pipeline (the cost of a drafted token depends on the policy: each generation measures it).
// How often drafted tokens are accepted, by the drafter's confidence in them.
struct Calibration {
    static constexpr int kBins = 10;
    double accepted[kBins] = {}, tested[kBins] = {};
    double drafted[kBins] = {};  // every drafted token, tested or not: how sure the drafter tends to be
    // Estimated acceptance probability of a drafted token of confidence c (in [0, 1]).
    double f(float c) const;
    void record(float c, bool was_accepted);
    void record_drafted(float c);
    // What drafting one more token is expected to add when all before it are accepted with
    // probability p and verifying it costs `cost` tokens' worth of time: E[max(0, p f(c) - cost)]
    // over the confidences the drafter has shown (it is verified only where that pays); p - cost
    // (a sure token) while it has shown few.
    double next_value(double p, double cost) const;
};

struct CallCosts {
    std::vector<double> verify_ms;  // index n: a call over n tokens; 0 = not measured yet
    Calibration calibration;        // of the pipeline's drafter (used when it reports confidences)
    double rate = 0;                // tokens per ms of recent rounds (0 = none yet)
    // Prompt lookup beside the drafter: decayed counts of its accepted tokens and of its rounds
    // with a rejection, per pipeline (a 64-token generation has too few lookups to learn from).
    double lookup_accepted = 0, lookup_rejected = 0;
    // And per looked-up position i (0-based): how often it was verified with every token before it
    // accepted, and how often it was accepted then (decayed per lookup round, like the counts above).
    // A lookup is not a geometric run: a repeat either holds for a while or breaks at once.
    std::vector<double> lookup_tested, lookup_hits;
    void record_lookup(int proposed, int accepted);
    // A round whose lookup the rule refused: the lookup record fades towards its prior, so one bad
    // stretch does not stop lookups for good (a lookup never verified is never learnt again).
    void forget_lookup();
    // P(looked-up token j (1-based) is accepted | those before it were): position j's record,
    // shrunk towards the pooled per-token rate `pooled` (or the position before it, where lower),
    // and optimistic while few lookups were verified.
    double lookup_position(int j, double pooled) const;
    // Confidence mode: what rounds that ran the drafter were expected to gain over plain decoding,
    // in tokens (expected extra tokens - extra time / t_verify(1)): mean and mean square over the
    // last ~20 such rounds.
    double drafting_gain = 0, drafting_gain_sq = 0;
    int drafting_rounds = 0;
    void record_drafting_gain(double tokens);
    // Enough drafting rounds, and their mean gain is below zero by more than its standard error.
    bool drafting_loses() const;
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
    // The drafter reports a confidence per drafted token: adaptive k then decides per round from
    // those (see the top of this file) and k() is the most it may draft.
    void use_confidence();
    bool uses_confidence() const { return confident_; }
    // Confidence mode: should the drafter draft one more token after these?
    bool more(const std::vector<float> &conf) const;
    // Confidence mode: how many of the drafted tokens (with these confidences) to verify.
    int select(const std::vector<float> &conf) const;
    // After a round: proposed draft tokens, how many the target accepted, what it cost, and the
    // proposed tokens' confidences (null or empty: none reported). tail / tail_accepted: looked-up
    // tokens verified after the drafted ones (lookup_tail) and how many of them were accepted; the
    // verify call was proposed + tail + 1 wide, and the tail was tested only if every drafted token
    // was accepted.
    void update(int proposed, int accepted, double draft_ms, double verify_ms, const std::vector<float> *conf = nullptr, int tail = 0,
                int tail_accepted = 0);
    // P(all m drafted tokens of this round are accepted): from their confidences (confidence mode)
    // or from the drafter's per-token acceptance.
    double chain_acceptance(int m, const std::vector<float> &conf) const;
    // Prompt lookup found `available` tokens continuing the round's m drafted tokens (all of which
    // are accepted with probability `chain`): how many of them to verify after the drafted ones,
    // in the same call. With measured costs (greedy), the j that maximises
    // chain * (P_1 + ... + P_j) - lambda * (t_verify(m + j + 1) - t_verify(m + 1)), P_j as for
    // lookup_length; 0 without costs. The round that follows a whole chain would otherwise often
    // be that lookup's own round: a tail yields its tokens a verify call earlier.
    int lookup_tail(int m, double chain, int available) const;
    // Prompt lookup beside the drafter (es_generation_config.lookup) found `available` tokens:
    // how many of them to verify. With measured costs (greedy), the j that maximises
    // E(j) - lambda * t_verify(j + 1), E(j) = 1 + P_1 + ... + P_j, P_j = p(1)...p(j), where p(i) is
    // how often a looked-up token at position i was accepted after the ones before it were
    // (CallCosts::lookup_position) and lambda the generation's running rate;
    // 0 when no j beats an average round (worth 0 at that rate; the drafter drafts the round
    // instead). Without costs (sampling, whose schedule never reads the clock), all of them.
    int lookup_length(int available) const;
    // After a lookup round: its verify call's cost and how many looked-up tokens were accepted
    // (the drafter's own acceptance, calibration and k are left as they are).
    void update_lookup(int proposed, int accepted, double verify_ms);
    // Prompt lookup found tokens but lookup_length verified none of them (the drafter drafted).
    void refused_lookup();
    // How often looked-up tokens are accepted (per token); 2/3 before the pipeline's first lookup.
    double lookup_acceptance() const;
    // Expected tokens per ms of a round drafting k (for tests and stats).
    double rate(int k) const;
    double acceptance() const { return (acc_ + 1.0) / (acc_ + rej_ + 2.0); }

private:
    int choose() const;
    double lambda() const;                          // tokens per ms the generation gets without this round's extra tokens
    bool draft_pays() const;                        // confidence mode: could even a sure drafted token pay?
    void learn_lookup(int proposed, int accepted);  // a verified lookup's outcome, into costs_
    bool adaptive_;
    bool confident_ = false;
    int k_, k_max_;
    CallCosts *costs_;
    double acc_ = 0, rej_ = 0;  // decayed counts of accepted tokens and of rejections
    double draft_ms_ = 0;       // per drafted token, averaged; 0 = not measured yet
    int rounds_at_zero_ = 0;    // plain rounds since drafting stopped or last probed
    int backoff_ = 0;           // plain rounds between probes at k = 0 (0: drafting pays)
    bool probe_ = false;        // the current k = 1 (k_max in confidence mode) is a probe
};

}  // namespace es
