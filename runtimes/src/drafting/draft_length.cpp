#include "drafting/draft_length.hpp"

#include <algorithm>
#include <cmath>

namespace es {

namespace {
constexpr double kCostWeight = 0.3;      // weight of a new measurement in the cost averages
constexpr double kDecay = 0.9;           // per round, of the acceptance counts (~10 rounds of memory)
constexpr int kProbeFirst = 8;           // rounds at k = 0 before a drafting round probes again,
constexpr int kProbeMax = 128;           // doubling after every probe that finds drafting still does not pay
constexpr double kPrior = 2.0;           // weight, in tokens, of the calibration prior f(c) = c
constexpr double kExplore = 0.5;         // optimism of a bin with few tests: + kExplore / sqrt(tests + 1)
constexpr double kBinCap = 256.0;        // a bin's counts are halved beyond this, so it keeps learning
constexpr double kRateWeight = 0.1;      // weight of a round in the running rate
constexpr double kGainWeight = 0.05;     // weight of a drafting round in the average gain (~20 rounds)
constexpr int kGainRounds = 8;           // drafting rounds before the average gain may stop drafting
constexpr double kMinDrafted = 16;       // drafted tokens before their confidences say what the next is worth
constexpr double kLookupPrior = 1.0;     // weight, in tests, of the pooled lookup rate in a position's estimate
constexpr double kLookupExplore = 0.25;  // optimism while few lookups were verified: + this / sqrt(verified + 1)
constexpr double kLookupForget = 0.85;   // per refused lookup, of the lookup record (~4 refusals halve it)

// Of n proposed tokens, the prefix j (0..n) to verify: the one maximising E(j) - lam * t_verify(m + j + 1),
// E(j) = 1 + P_1 + ... + P_j, P_j = p(1)...p(j) (p(i): token i is accepted given those before it
// were); j = 0 is worth `floor` (a plain step's value, or 0: an average round at the rate lam). m:
// tokens already in the call ahead of these (a lookup tail's drafted chain; their odds are in p(1)).
template <class P>
int best_prefix(const CallCosts &costs, double lam, int n, double floor, P p, int m = 0) {
    int best = 0;
    double all = 1, expected = 1, best_value = floor;
    for (int j = 1; j <= n; ++j) {
        expected += (all *= p(j));
        const double value = expected - lam * costs.verify(static_cast<size_t>(m + j) + 1);
        if (value > best_value + 1e-12) best_value = value, best = j;
    }
    return best;
}
}  // namespace

double Calibration::f(float c) const {
    const double x = std::min(1.0, std::max(0.0, static_cast<double>(c)));
    const int b = std::min(kBins - 1, static_cast<int>(x * kBins));
    // Optimistic while a bin has few tests, so that an underconfident drafter gets tested (and
    // learnt) instead of never being verified.
    const double mean = (accepted[b] + kPrior * x) / (tested[b] + kPrior);
    return std::min(1.0, mean + kExplore / std::sqrt(tested[b] + 1.0));
}

void Calibration::record(float c, bool was_accepted) {
    const double x = std::min(1.0, std::max(0.0, static_cast<double>(c)));
    const int b = std::min(kBins - 1, static_cast<int>(x * kBins));
    accepted[b] += was_accepted ? 1 : 0;
    tested[b] += 1;
    if (tested[b] > kBinCap) {
        accepted[b] *= 0.5;
        tested[b] *= 0.5;
    }
}

void Calibration::record_drafted(float c) {
    const double x = std::min(1.0, std::max(0.0, static_cast<double>(c)));
    double &d = drafted[std::min(kBins - 1, static_cast<int>(x * kBins))];
    d += 1;
    if (d > kBinCap)
        for (double &v : drafted) v *= 0.5;  // halved together: the shares keep following the text
}

double Calibration::next_value(double p, double cost) const {
    double n = 0, value = 0;
    for (int b = 0; b < kBins; ++b) {
        n += drafted[b];
        value += drafted[b] * std::max(0.0, p * f(static_cast<float>((b + 0.5) / kBins)) - cost);
    }
    return n < kMinDrafted ? p - cost : value / n;
}

void CallCosts::record_verify(size_t n, double ms) {
    if (n == 0 || !(ms > 0)) return;
    if (verify_ms.size() <= n) verify_ms.resize(n + 1, 0.0);
    double &v = verify_ms[n];
    v = v > 0 ? (1 - kCostWeight) * v + kCostWeight * ms : ms;
}

void CallCosts::record_drafting_gain(double tokens) {
    const double w = std::max(kGainWeight, 1.0 / ++drafting_rounds);  // a plain mean until ~20 rounds
    drafting_gain += w * (tokens - drafting_gain);
    drafting_gain_sq += w * (tokens * tokens - drafting_gain_sq);
}

bool CallCosts::drafting_loses() const {
    if (drafting_rounds < kGainRounds) return false;
    // Rounds gain and lose by whole tokens; only a mean clearly below zero stops drafting.
    const double n = std::min(static_cast<double>(drafting_rounds), 2.0 / kGainWeight - 1);
    const double sd = std::sqrt(std::max(0.0, drafting_gain_sq - drafting_gain * drafting_gain));
    return drafting_gain + sd / std::sqrt(n) < 0;
}

void CallCosts::record_lookup(int proposed, int accepted) {
    // Position i was tested only if every looked-up token before it was accepted.
    // Every position's counts decay per lookup round, tested or not, so a position that is no
    // longer reached drifts back to the pooled rate instead of keeping an old record.
    const size_t n = static_cast<size_t>(std::max(0, std::min(proposed, accepted + 1)));
    if (lookup_tested.size() < n) lookup_tested.resize(n, 0.0), lookup_hits.resize(n, 0.0);
    for (size_t i = 0; i < lookup_tested.size(); ++i) {
        lookup_tested[i] = kDecay * lookup_tested[i] + (i < n ? 1 : 0);
        lookup_hits[i] = kDecay * lookup_hits[i] + (static_cast<int>(i) < accepted ? 1 : 0);
    }
}

void CallCosts::forget_lookup() {
    for (double *v : {&lookup_accepted, &lookup_rejected}) *v *= kLookupForget;
    for (double &v : lookup_tested) v *= kLookupForget;
    for (double &v : lookup_hits) v *= kLookupForget;
}

double CallCosts::lookup_position(int j, double pooled) const {
    // Each position's record, shrunk towards a prior: the pooled rate, or the position before it
    // where that is lower (a position seldom reached is no likelier than the one before it).
    double prior = pooled, p = pooled;
    for (size_t i = 0; i < static_cast<size_t>(std::max(1, j)); ++i) {
        const double tested = i < lookup_tested.size() ? lookup_tested[i] : 0, hits = i < lookup_hits.size() ? lookup_hits[i] : 0;
        p = (hits + kLookupPrior * prior) / (tested + kLookupPrior);
        prior = std::min(pooled, p);
    }
    // Optimistic while few lookups were verified, as the drafter's calibration is: a lookup the
    // rule never verifies is never learnt, and whether the first ones pay hangs on how fast the
    // drafter's first rounds happened to run.
    const double verified = lookup_tested.empty() ? 0 : lookup_tested[0];
    return std::min(1.0, p + kLookupExplore / std::sqrt(verified + 1.0));
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

void DraftLengthController::use_confidence() {
    if (!adaptive_ || !costs_) return;  // fixed k stays fixed; without costs there is nothing to weigh
    confident_ = true;
    k_ = costs_->drafting_loses() ? 0 : k_max_;  // a later generation starts from what was learned
}

double DraftLengthController::lambda() const {
    const double v1 = costs_ ? costs_->verify(1) : 0;
    const double plain = v1 > 0 ? 1.0 / v1 : 0;
    return std::max(plain, costs_ ? costs_->rate : 0.0);
}

bool DraftLengthController::draft_pays() const {
    if (!(draft_ms_ > 0) || !(costs_->verify(1) > 0)) return true;  // not measured yet: try
    const double extra = draft_ms_ + std::max(0.0, costs_->verify(2) - costs_->verify(1));
    return 1.0 > lambda() * extra;
}

bool DraftLengthController::more(const std::vector<float> &conf) const {
    if (!confident_) return static_cast<int>(conf.size()) < k_;
    const size_t n = conf.size();
    if (static_cast<int>(n) >= k_max_) return false;
    double all = 1;  // P_n: all n drafted tokens accepted
    for (float c : conf) all *= costs_->calibration.f(c);
    // Token n + 1: a draft call, then (where its confidence makes it pay) a longer verify.
    const double lam = lambda();
    const double longer = std::max(0.0, costs_->verify(n + 2) - costs_->verify(n + 1));
    return costs_->calibration.next_value(all, lam * longer) > lam * draft_ms_;
}

int DraftLengthController::select(const std::vector<float> &conf) const {
    const int n = static_cast<int>(conf.size());
    if (!confident_) return std::min(n, k_);
    const double lam = lambda();
    return best_prefix(*costs_, lam, n, 1 - lam * costs_->verify(1),
                       [&](int j) { return costs_->calibration.f(conf[static_cast<size_t>(j - 1)]); });
}

double DraftLengthController::lookup_acceptance() const {
    const double acc = costs_ ? costs_->lookup_accepted : 0, rej = costs_ ? costs_->lookup_rejected : 0;
    return (acc + 2.0) / (acc + rej + 3.0);
}

int DraftLengthController::lookup_length(int available) const {
    if (available <= 0) return 0;
    if (!costs_ || !(costs_->verify(1) > 0)) return available;
    // Renewal reward at the generation's running rate lambda: a round that yields E tokens in T ms
    // is worth E - lambda * T, and an average round (the drafter's, or a plain step when it does
    // not draft) is worth about 0, so the lookup must beat 0, not a plain step.
    const double a = lookup_acceptance();
    return best_prefix(*costs_, lambda(), available, 0.0, [&](int j) { return costs_->lookup_position(j, a); });
}

void DraftLengthController::update_lookup(int proposed, int accepted, double verify_ms) {
    if (!costs_) return;
    costs_->record_verify(static_cast<size_t>(proposed) + 1, verify_ms);
    learn_lookup(proposed, accepted);
}

void DraftLengthController::refused_lookup() {
    if (costs_) costs_->forget_lookup();
}

void DraftLengthController::learn_lookup(int proposed, int accepted) {
    if (!costs_ || proposed <= 0) return;
    costs_->lookup_accepted = kDecay * costs_->lookup_accepted + accepted;
    costs_->lookup_rejected = kDecay * costs_->lookup_rejected + (accepted < proposed ? 1 : 0);
    costs_->record_lookup(proposed, accepted);
}

double DraftLengthController::chain_acceptance(int m, const std::vector<float> &conf) const {
    double all = 1;
    const bool calibrated = confident_ && costs_ && conf.size() >= static_cast<size_t>(std::max(0, m));
    for (int i = 0; i < m; ++i) all *= calibrated ? costs_->calibration.f(conf[static_cast<size_t>(i)]) : acceptance();
    return all;
}

int DraftLengthController::lookup_tail(int m, double chain, int available) const {
    if (m <= 0 || available <= 0 || !costs_ || !(costs_->verify(1) > 0)) return 0;
    // The lookup's rule after m drafted tokens: its first token also needs the whole chain, and no
    // tail is the round as drafted (worth 1 - lambda * t_verify(m + 1) on the same scale).
    const double lam = lambda(), a = lookup_acceptance();
    return best_prefix(
        *costs_, lam, available, 1 - lam * costs_->verify(static_cast<size_t>(m) + 1),
        [&](int j) { return (j == 1 ? chain : 1.0) * costs_->lookup_position(j, a); }, m);
}

void DraftLengthController::update(int proposed, int accepted, double draft_ms, double verify_ms, const std::vector<float> *conf, int tail,
                                   int tail_accepted) {
    if (costs_) costs_->record_verify(static_cast<size_t>(proposed + std::max(0, tail)) + 1, verify_ms);
    if (accepted == proposed) learn_lookup(tail, tail_accepted);  // the tail was tested: learn it as a lookup
    // Confidence mode drafts more than it proposes: the cost is per drafted token.
    const int drafted = conf && !conf->empty() ? static_cast<int>(conf->size()) : proposed;
    if (drafted > 0 && draft_ms >= 0) {
        const double per = draft_ms / drafted;
        draft_ms_ = draft_ms_ > 0 ? (1 - kCostWeight) * draft_ms_ + kCostWeight * per : per;
    }
    if (costs_ && conf && !conf->empty()) {
        for (float c : *conf) costs_->calibration.record_drafted(c);
        // Token i was tested only if every token before it was accepted.
        for (int i = 0; i < proposed && i <= accepted && i < static_cast<int>(conf->size()); ++i)
            costs_->calibration.record((*conf)[static_cast<size_t>(i)], i < accepted);
    }
    if (confident_ && conf && !conf->empty() && costs_->verify(1) > 0) {
        // What this round was expected to yield beyond plain decoding in the same time, as the
        // choice was made: the tokens it verified were expected to add P_1 + ... + P_j and cost
        // a longer verify, and the draft calls cost what they cost. (Expected, not realised: the
        // realised gain is as noisy as acceptance and charges the calibration's first guesses to
        // the drafter; the expectation follows the calibration as it learns.)
        double all = 1, extra = 0;
        for (int i = 0; i < proposed && i < drafted; ++i) extra += (all *= costs_->calibration.f((*conf)[static_cast<size_t>(i)]));
        const double v1 = costs_->verify(1);
        const double longer = proposed > 0 ? std::max(0.0, costs_->verify(static_cast<size_t>(proposed) + 1) - v1) : 0.0;
        costs_->record_drafting_gain(extra - (longer + std::max(0.0, draft_ms)) / v1);
    }
    if (costs_ && draft_ms + verify_ms > 0) {
        const double r = (accepted + std::max(0, tail_accepted) + 1) / (draft_ms + verify_ms);
        costs_->rate = costs_->rate > 0 ? (1 - kRateWeight) * costs_->rate + kRateWeight * r : r;
    }
    // The per-token acceptance is kept at fixed k too: chain_acceptance (a lookup tail) reads it.
    if (proposed > 0 && !confident_) {
        acc_ = kDecay * acc_ + accepted;
        rej_ = kDecay * rej_ + (accepted < proposed ? 1 : 0);
    }
    if (!adaptive_) return;
    if (!confident_ && !costs_) {
        // Without costs: everything accepted, draft further; less than half, draft less.
        if (proposed == 0) return;
        if (accepted == proposed)
            k_ = std::min(k_ + 1, k_max_);
        else if (2 * accepted < proposed)
            k_ = std::max(k_ - 1, 1);
        return;
    }
    const bool was_probe = probe_;
    probe_ = false;
    // Confidence mode drafts up to k_max while a sure token could pay for its draft call and its
    // longer verify (a drafter as dear as the target cannot), and while the rounds that ran the
    // drafter gain on plain decoding; otherwise the history decides.
    k_ = confident_ ? (draft_pays() && !costs_->drafting_loses() ? k_max_ : 0) : choose();
    if (k_ > 0) {
        if (!was_probe) backoff_ = 0;  // drafting pays again: forget the back-off
        return;
    }
    if (was_probe || backoff_ == 0) {  // drafting (still) does not pay: wait longer before the next probe
        backoff_ = backoff_ ? std::min(2 * backoff_, kProbeMax) : kProbeFirst;
        rounds_at_zero_ = 0;
    }
    if (++rounds_at_zero_ >= backoff_) {  // acceptance is only learnt while drafting: probe
        rounds_at_zero_ = 0;
        k_ = confident_ ? k_max_ : 1;  // a confidence-mode round drafts as far as it pays
        probe_ = true;
    }
}

}  // namespace es
