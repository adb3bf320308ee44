// Unit test of the draft-length controller on synthetic costs (no model, no OpenVINO):
//   ctest (runtimes/tests/CMakeLists.txt builds it)
// Each scenario runs rounds against a cost curve and an acceptance probability, and checks that
// adaptive k settles on the k that maximises tokens per ms, found here by brute force.
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <utility>
#include <vector>

#include "check.hpp"
#include "drafting/draft_length.hpp"

using es::CallCosts;
using es::DraftLengthController;

// Expected tokens per ms of drafting k with per-token acceptance a (the true optimum).
static int best_k(double a, double t_draft, const std::function<double(int)> &t_verify, int k_max) {
    int best = 0;
    double best_rate = 0;
    for (int k = 0; k <= k_max; ++k) {
        double e = 0, p = 1;
        for (int i = 0; i <= k; ++i, p *= a) e += p;
        double r = e / (k * t_draft + t_verify(k + 1));
        if (r > best_rate) best_rate = r, best = k;
    }
    return best;
}

// Runs `rounds` rounds; returns the controller's k at the end and counts the ks it used.
static int simulate(DraftLengthController &c, double a, double t_draft, const std::function<double(int)> &t_verify, int rounds,
                    unsigned seed, int *visits = nullptr) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> u(0, 1);
    for (int r = 0; r < rounds; ++r) {
        int k = c.k();
        if (visits) ++visits[k];
        int acc = 0;
        while (acc < k && u(rng) < a) ++acc;
        c.update(k, acc, k * t_draft, t_verify(k + 1));
    }
    return c.k();
}

// Confidence mode against the best fixed k on the same draws: each round draws k_max confidences
// (conf(u), u uniform) and as many uniforms, token i being accepted when its uniform falls below its
// confidence (a calibrated drafter). Fills tokens per ms of both, and drafted / verified per round.
struct VsFixed {
    double confidence = 0, best_fixed = 0, drafted = 0, verified = 0;
};
static VsFixed confidence_vs_fixed(int rounds, unsigned seed, int k_max, double t_draft, const std::function<double(int)> &t_verify,
                                   const std::function<double(double)> &conf_of) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> u(0, 1);
    std::vector<std::vector<double>> conf_draw(rounds, std::vector<double>(k_max)), hit(rounds, std::vector<double>(k_max));
    for (int r = 0; r < rounds; ++r)
        for (int i = 0; i < k_max; ++i) conf_draw[r][i] = conf_of(u(rng)), hit[r][i] = u(rng);
    auto accepted = [&](int r, int j) {
        int a = 0;
        while (a < j && hit[r][a] < conf_draw[r][a]) ++a;
        return a;
    };
    VsFixed out;
    for (int k = 0; k <= k_max; ++k) {
        double tokens = 0, ms = 0;
        for (int r = 0; r < rounds; ++r) tokens += accepted(r, k) + 1, ms += k * t_draft + t_verify(k + 1);
        out.best_fixed = std::max(out.best_fixed, tokens / ms);
    }
    CallCosts costs;
    DraftLengthController c(-1, k_max, &costs);
    c.use_confidence();
    double tokens = 0, ms = 0;
    for (int r = 0; r < rounds; ++r) {
        std::vector<float> conf;
        if (c.k() > 0) do
                conf.push_back(static_cast<float>(conf_draw[r][conf.size()]));
            while (static_cast<int>(conf.size()) < c.k() && c.more(conf));
        const int j = c.select(conf), a = accepted(r, j);
        tokens += a + 1, ms += t_draft * conf.size() + t_verify(j + 1);
        out.drafted += conf.size(), out.verified += j;
        c.update(j, a, t_draft * conf.size(), t_verify(j + 1), &conf);
    }
    out.confidence = tokens / ms, out.drafted /= rounds, out.verified /= rounds;
    return out;
}

int main() {
    const int k_max = 8;
    // 1. Flat verify cost (memory-bound device, e.g. a GPU), cheap drafter, high acceptance: draft long.
    {
        CallCosts costs;
        DraftLengthController c(-1, k_max, &costs);
        auto tv = [](int) { return 20.0; };
        int k = simulate(c, 0.95, 0.5, tv, 200, 1);
        CHECK(k == best_k(0.95, 0.5, tv, k_max), "flat costs: k=%d, best %d", k, best_k(0.95, 0.5, tv, k_max));
        CHECK(k >= 6, "flat costs, acceptance 0.95: k=%d should be long", k);
    }
    // 2. Compute-bound verify (cost grows with every token) and a drafter that is not cheap: drafting
    //    does not pay, the controller turns it off (k = 0) and probes now and then.
    {
        CallCosts costs;
        DraftLengthController c(-1, k_max, &costs);
        auto tv = [](int n) { return 10.0 * n; };
        int visits[k_max + 1] = {0};
        simulate(c, 0.5, 2.0, tv, 400, 2, visits);
        CHECK(best_k(0.5, 2.0, tv, k_max) == 0, "scenario 2 is meant to have optimum 0");
        CHECK(visits[0] > 300, "compute-bound: only %d of 400 rounds at k=0", visits[0]);
        CHECK(visits[1] >= 3, "k=0 must still probe with k=1 now and then (%d probes)", visits[1]);
        CHECK(visits[1] <= 8, "probes must back off while drafting does not pay (%d probes in 400 rounds)", visits[1]);
    }
    // 3. A CPU-like curve (each extra token ~40% of a decode step) at several acceptance levels.
    for (double a : {0.3, 0.6, 0.8, 0.9}) {
        CallCosts costs;
        DraftLengthController c(-1, k_max, &costs);
        auto tv = [](int n) { return 60.0 * (1 + 0.4 * (n - 1)); };
        int visits[k_max + 1] = {0};
        simulate(c, a, 1.5, tv, 600, 3, visits);
        const int best = best_k(a, 1.5, tv, k_max);
        int most = 0;
        for (int k = 0; k <= k_max; ++k)
            if (visits[k] > visits[most]) most = k;
        CHECK(std::abs(most - best) <= 1, "CPU curve, a=%.1f: most used k=%d, best %d", a, most, best);
    }
    // 4. Costs persist across generations: a second controller starts at the learned optimum.
    {
        CallCosts costs;
        auto tv = [](int n) { return 10.0 * n; };
        DraftLengthController first(-1, k_max, &costs);
        simulate(first, 0.5, 2.0, tv, 50, 4);
        DraftLengthController second(-1, k_max, &costs);
        CHECK(second.k() == 0, "second generation starts at k=%d, not at the learned 0", second.k());
    }
    // 5. Fixed k never moves, and still records costs.
    {
        CallCosts costs;
        DraftLengthController c(3, k_max, &costs);
        simulate(c, 0.1, 1.0, [](int n) { return 5.0 * n; }, 50, 5);
        CHECK(c.k() == 3, "fixed k moved to %d", c.k());
        CHECK(costs.verify_ms.size() > 4 && std::abs(costs.verify_ms[4] - 20.0) < 1e-9, "fixed k did not record its verify cost");
    }
    // 6. Cost estimates: exact where measured, linear between, optimistic outside.
    {
        CallCosts costs;
        costs.record_verify(2, 20);
        costs.record_verify(6, 60);
        CHECK(std::abs(costs.verify(2) - 20) < 1e-9 && std::abs(costs.verify(4) - 40) < 1e-9, "interpolation");
        CHECK(std::abs(costs.verify(9) - 60) < 1e-9, "beyond the largest: flat");
        CHECK(std::abs(costs.verify(1) - 10) < 1e-9, "below the smallest: proportional");
    }
    // 7-9. Confidence mode: the drafter reports its probability of each token. Per round it drafts
    //      while the next token can pay and verifies the best prefix, decided token by token.
    auto cpu = [](int n) { return 60.0 * (1 + 0.4 * (n - 1)); };  // one more token: +40% of a step
    {
        CallCosts costs;
        for (int n = 1; n <= k_max + 1; ++n) costs.record_verify(n, cpu(n));
        // A well-tested, calibrated drafter: f(c) = c in every bin.
        for (int b = 0; b < es::Calibration::kBins; ++b) {
            const float mid = (b + 0.5f) / es::Calibration::kBins;
            for (int i = 0; i < 200; ++i) costs.calibration.record(mid, i < static_cast<int>(200 * mid));
        }
        DraftLengthController c(-1, k_max, &costs);
        c.use_confidence();
        CHECK(c.uses_confidence() && c.k() == k_max, "confidence mode drafts up to k_max (k=%d)", c.k());
        // f(c) ~ c: a token pays when f > 0.4 (its share of a decode step).
        CHECK(c.select({0.3f}) == 0, "an unsure token (0.3) is not worth verifying on this curve");
        CHECK(c.select({0.9f, 0.9f, 0.9f}) == 3, "three sure tokens are all verified (got %d)", c.select({0.9f, 0.9f, 0.9f}));
        CHECK(c.select({0.95f, 0.95f, 0.1f, 0.99f}) == 2, "verification stops before the unsure third token (got %d)",
              c.select({0.95f, 0.95f, 0.1f, 0.99f}));
        CHECK(c.more({0.95f, 0.95f}), "drafting goes on after two sure tokens");
        CHECK(!c.more({0.2f}), "drafting stops after a token that makes the rest unlikely");
        CHECK(!c.more(std::vector<float>(k_max, 0.99f)), "drafting stops at k_max");
    }
    {
        // Flat verify costs (a GPU): everything drafted is verified, even unsure tokens.
        CallCosts costs;
        for (int n = 1; n <= k_max + 1; ++n) costs.record_verify(n, 20.0);
        DraftLengthController c(-1, k_max, &costs);
        c.use_confidence();
        CHECK(c.select({0.3f, 0.3f}) == 2, "flat costs: unsure tokens are still free to verify");
    }
    {
        // An overconfident drafter (says 0.95, is right 20% of the time): the calibration learns
        // it and the rounds stop verifying its tokens.
        CallCosts costs;
        for (int n = 1; n <= k_max + 1; ++n) costs.record_verify(n, cpu(n));
        DraftLengthController c(-1, k_max, &costs);
        c.use_confidence();
        std::mt19937 rng(7);
        std::uniform_real_distribution<double> u(0, 1);
        int verified_late = 0;
        for (int r = 0; r < 300; ++r) {
            std::vector<float> conf;
            do conf.push_back(0.95f);
            while (c.more(conf));
            int j = c.select(conf), acc = 0;
            while (acc < j && u(rng) < 0.2) ++acc;
            if (r >= 200) verified_late += j;
            c.update(j, acc, 1.5 * conf.size(), cpu(j + 1), &conf);
        }
        CHECK(costs.calibration.f(0.95f) < 0.5, "calibration of an overconfident drafter: f(0.95) = %.2f", costs.calibration.f(0.95f));
        CHECK(verified_late <= 5, "after calibration, tokens of an overconfident drafter are not verified (%d in 100 rounds)",
              verified_late);
    }
    {
        // An underconfident drafter (says 0.02, is right 95% of the time): optimism while the
        // calibration has few tests gets its tokens verified, and then they keep being verified.
        CallCosts costs;
        for (int n = 1; n <= k_max + 1; ++n) costs.record_verify(n, cpu(n));
        DraftLengthController c(-1, k_max, &costs);
        c.use_confidence();
        std::mt19937 rng(9);
        std::uniform_real_distribution<double> u(0, 1);
        int verified_late = 0;
        for (int r = 0; r < 300; ++r) {
            std::vector<float> conf;
            do conf.push_back(0.02f);
            while (c.more(conf));
            int j = c.select(conf), acc = 0;
            while (acc < j && u(rng) < 0.95) ++acc;
            if (r >= 200) verified_late += j;
            c.update(j, acc, 1.5 * conf.size(), cpu(j + 1), &conf);
        }
        CHECK(costs.calibration.f(0.02f) > 0.8, "calibration of an underconfident drafter: f(0.02) = %.2f", costs.calibration.f(0.02f));
        CHECK(verified_late >= 300, "an underconfident but right drafter gets its tokens verified (%d in 100 rounds)", verified_late);
    }
    {
        // A drafter as dear as the target (the target drafting for itself on a CPU): even a sure
        // token cannot pay for its draft call, so drafting stops (k = 0) apart from rare probes.
        CallCosts costs;
        DraftLengthController c(-1, k_max, &costs);
        c.use_confidence();
        int rounds_drafting = 0;
        for (int r = 0; r < 400; ++r) {
            std::vector<float> conf;
            if (c.k() > 0) do
                    conf.push_back(0.99f);
                while (static_cast<int>(conf.size()) < c.k() && c.more(conf));
            const int j = conf.empty() ? 0 : c.select(conf);
            rounds_drafting += conf.empty() ? 0 : 1;
            c.update(j, j, 60.0 * conf.size(), cpu(j + 1), &conf);
        }
        CHECK(rounds_drafting <= 20, "a drafter as dear as the target still drafts in %d of 400 rounds", rounds_drafting);
    }
    {
        // A cheap drafter that is seldom sure (0.3, and right 30% of the time): its tokens are not
        // worth verifying on this curve, so each round would pay a draft call for nothing. The
        // rounds that ran it lose on plain decoding, so drafting stops apart from rare probes, and
        // the next generation starts where this one ended.
        CallCosts costs;
        for (int n = 1; n <= k_max + 1; ++n) costs.record_verify(n, cpu(n));
        for (int i = 0; i < 300; ++i) costs.calibration.record(0.3f, i % 10 < 3);
        std::mt19937 rng(11);
        std::uniform_real_distribution<double> u(0, 1);
        int rounds_drafting = 0;
        for (int gen = 0; gen < 2; ++gen) {
            DraftLengthController c(-1, k_max, &costs);
            c.use_confidence();
            if (gen == 1) CHECK(c.k() == 0, "a later generation starts without drafting (k=%d)", c.k());
            for (int r = 0; r < 200; ++r) {
                std::vector<float> conf;
                if (c.k() > 0) do
                        conf.push_back(0.3f);
                    while (static_cast<int>(conf.size()) < c.k() && c.more(conf));
                const int j = conf.empty() ? 0 : c.select(conf);
                int acc = 0;
                while (acc < j && u(rng) < 0.3) ++acc;
                rounds_drafting += conf.empty() ? 0 : 1;
                c.update(j, acc, 6.0 * conf.size(), cpu(j + 1), &conf);
            }
        }
        CHECK(rounds_drafting <= 30, "a drafter whose tokens are never worth verifying still drafts in %d of 400 rounds", rounds_drafting);
    }
    {
        // The point of it: with confidences that vary token by token (uniform, calibrated), deciding
        // per token yields more tokens per ms than the best fixed k on the same draws.
        const VsFixed v = confidence_vs_fixed(3000, 8, k_max, 1.5, cpu, [](double x) { return x; });
        CHECK(v.confidence > 1.05 * v.best_fixed, "confidence mode: %.4f tokens/ms vs best fixed k %.4f", v.confidence, v.best_fixed);
        std::printf("confidence mode %.4f tokens/ms, best fixed k %.4f\n", v.confidence, v.best_fixed);
    }
    {
        // A dear drafter (an EAGLE-3 head at the 1B twin's width: a step costs 0.13 of a decode step)
        // on the twin's measured verify curve, with confidences like a trained head's (mean 0.71,
        // most near 1): the tokens a round drafts but does not verify are what the rule must avoid;
        // per-token decisions still beat the best fixed k on the same draws.
        const double pts[] = {0, 28.3, 29.5, 34.2, 39.2, 44.2, 47.7, 51.1, 53.3};  // ms, n = 1..8
        auto twin = [&](int n) { return pts[std::min(n, 8)]; };
        const VsFixed v = confidence_vs_fixed(4000, 9, k_max, 0.13 * twin(1), twin, [](double x) { return std::pow(x, 0.4); });
        CHECK(v.confidence > 1.01 * v.best_fixed, "dear drafter: %.4f tokens/ms vs best fixed k %.4f", v.confidence, v.best_fixed);
        std::printf("dear drafter: confidence mode %.4f tokens/ms (%.2f drafted, %.2f verified per round), best fixed k %.4f\n",
                    v.confidence, v.drafted, v.verified, v.best_fixed);
    }
    {
        // Prompt lookup beside the drafter: how many looked-up tokens a round verifies. On the
        // twin's curve a reliable lookup is verified in full (a repeat of earlier text is right
        // throughout); once lookups are mostly rejected, it verifies fewer, then none (the drafter
        // drafts the round); the drafter's own acceptance and k are not touched, and the record
        // is the pipeline's (CallCosts), like the call costs.
        const double pts[] = {0, 28.3, 29.5, 34.2, 39.2, 44.2, 47.7, 51.1, 53.3, 56.0};  // ms, n = 1..9
        CallCosts costs;
        for (int n = 1; n <= 9; ++n) costs.record_verify(static_cast<size_t>(n), pts[n]);
        DraftLengthController c(-1, k_max, &costs);
        c.use_confidence();
        const int k_before = c.k();
        CHECK(c.lookup_length(0) == 0, "nothing looked up, nothing verified");
        for (int r = 0; r < 20; ++r) c.update_lookup(8, 8, pts[9]);
        CHECK(c.lookup_length(8) == 8, "reliable lookups are verified in full (got %d of 8)", c.lookup_length(8));
        CHECK(c.lookup_length(3) == 3, "a short lookup in full (got %d of 3)", c.lookup_length(3));
        for (int r = 0; r < 30; ++r) c.update_lookup(8, r % 2 ? 2 : 0, pts[9]);  // the first half the time, then one more
        const int mixed = c.lookup_length(8);
        CHECK(mixed >= 1 && mixed < 8, "lookups that often break: verified %d of 8, want fewer but some", mixed);
        CHECK(c.k() == k_before, "lookup rounds moved the drafter's k (%d -> %d)", k_before, c.k());
        // The bar is the generation's running rate, not a plain step: once the drafter's rounds
        // yield 3 tokens per 48 ms, a lookup accepted half the time (which would beat plain
        // decoding) is not verified, nor one never accepted.
        for (int r = 0; r < 50; ++r) c.update(2, 2, 2 * 3.4, 48.0 - 2 * 3.4);
        CHECK(c.lookup_length(8) == 0, "a lookup worse than the drafter's rounds is verified (%d of 8)", c.lookup_length(8));
        for (int r = 0; r < 30; ++r) c.update_lookup(2, 0, pts[3]);
        CHECK(c.lookup_length(8) == 0, "lookups never accepted are verified (%d of 8)", c.lookup_length(8));
        DraftLengthController later(-1, k_max, &costs);  // the pipeline's next generation remembers
        CHECK(later.lookup_length(8) == 0, "a later generation forgot the lookups' record (%d of 8)", later.lookup_length(8));
        // Without costs (sampling schedules never read the clock): all of them.
        DraftLengthController s(-1, k_max, nullptr);
        CHECK(s.lookup_length(5) == 5, "without costs a lookup is verified in full (got %d)", s.lookup_length(5));
    }
    {
        // A lookup is not a geometric run, so its length is learnt per position. Lookups that
        // always hold for two tokens and then break (2 of 3 tokens accepted per token, pooled)
        // are verified for two, not further; lookups that either hold throughout or break at once
        // are verified in full.
        const double pts[] = {0, 28.3, 29.5, 34.2, 39.2, 44.2, 47.7, 51.1, 53.3, 56.0};  // ms, n = 1..9
        CallCosts two;
        for (int n = 1; n <= 9; ++n) two.record_verify(static_cast<size_t>(n), pts[n]);
        DraftLengthController c(-1, k_max, &two);
        c.use_confidence();
        for (int r = 0; r < 30; ++r) c.update_lookup(8, 2, pts[9]);
        CHECK(c.lookup_length(8) == 2, "lookups that break after two: verified %d of 8, want 2", c.lookup_length(8));
        CHECK(c.lookup_length(1) == 1, "a one-token lookup of that kind: verified %d of 1", c.lookup_length(1));
        CallCosts bimodal;
        for (int n = 1; n <= 9; ++n) bimodal.record_verify(static_cast<size_t>(n), pts[n]);
        DraftLengthController b(-1, k_max, &bimodal);
        b.use_confidence();
        for (int r = 0; r < 30; ++r) b.update_lookup(8, r % 2 ? 8 : 0, pts[9]);
        CHECK(b.lookup_length(8) == 8, "all-or-nothing lookups: verified %d of 8, want 8", b.lookup_length(8));
        CHECK(bimodal.lookup_position(1, 0.5) < 0.7 && bimodal.lookup_position(5, 0.5) > 0.8, "all-or-nothing: p(1) %.2f, p(5) %.2f",
              bimodal.lookup_position(1, 0.5), bimodal.lookup_position(5, 0.5));
    }
    {
        // The first lookups are verified even when the drafter's first rounds ran fast (on the
        // twin: 3 tokens per 34 ms, verify calls up to 3 tokens measured), or lookups would never be
        // learnt; lookups that are then always rejected are dropped.
        CallCosts costs;
        costs.record_verify(1, 23.0), costs.record_verify(2, 23.5), costs.record_verify(3, 34.9);
        DraftLengthController c(-1, k_max, &costs);
        c.use_confidence();
        for (int r = 0; r < 20; ++r) c.update(2, 2, 2 * 2.0, 30.0);
        CHECK(c.lookup_length(8) > 0, "a first lookup beside a fast drafter is not verified");
        for (int r = 0; r < 12; ++r) c.update_lookup(c.lookup_length(8), 0, 40.0);
        CHECK(c.lookup_length(8) == 0, "lookups always rejected are still verified (%d of 8)", c.lookup_length(8));
    }
    {
        // One early failure must not stop lookups for good: a refused lookup is never verified, so
        // never learnt again; the record fades with each refusal until a lookup is tried. Lookups
        // that keep failing are then tried seldom. (The twin's head at k = 2: 2.5 tokens per 45 ms.)
        const double pts[] = {0, 28.3, 29.5, 34.2, 39.2, 44.2, 47.7, 51.1, 53.3, 56.0};  // ms, n = 1..9
        auto run = [&](bool lookups_hold, int opportunities) {
            CallCosts costs;
            for (int n = 1; n <= 9; ++n) costs.record_verify(static_cast<size_t>(n), pts[n]);
            DraftLengthController c(2, 2, &costs);
            for (int r = 0; r < 20; ++r) c.update(2, 2, 2 * 4.0, 37.0);
            c.update_lookup(8, 0, pts[9]);  // the first lookup fails
            int verified = 0, first = -1;
            for (int r = 0; r < opportunities; ++r) {
                const int j = c.lookup_length(8);
                if (j == 0) {
                    c.refused_lookup();
                    c.update(2, 2, 2 * 4.0, 37.0);
                    continue;
                }
                if (first < 0) first = r;
                ++verified;
                c.update_lookup(j, lookups_hold ? j : 0, pts[j + 1]);
            }
            return std::make_pair(first, verified);
        };
        const auto good = run(true, 40);
        CHECK(good.first >= 0 && good.first <= 20, "after one failed lookup, the next verified at opportunity %d", good.first);
        CHECK(good.second >= 15, "lookups that hold again: verified in %d of 40 opportunities", good.second);
        const auto bad = run(false, 300);
        CHECK(bad.second <= 30, "lookups that always fail: verified in %d of 300 opportunities", bad.second);
    }
    {
        // A lookup tail: looked-up tokens verified after the drafted ones in the same call, worth
        // P(the whole chain is accepted) * E(accepted looked-up tokens) against the longer verify.
        const double pts[] = {0, 28.3, 29.5, 34.2, 39.2, 44.2, 47.7, 51.1, 53.3, 56.0};  // ms, n = 1..9
        CallCosts costs;
        for (int n = 1; n <= 9; ++n) costs.record_verify(static_cast<size_t>(n), pts[n]);
        DraftLengthController c(2, 2, &costs);  // fixed k = 2: the chain's odds come from its acceptance
        for (int r = 0; r < 20; ++r) c.update_lookup(6, 6, pts[7]);
        for (int r = 0; r < 20; ++r) c.update(2, 2, 2 * 3.4, pts[3]);
        const double sure = c.chain_acceptance(2, {});
        CHECK(sure > 0.85, "a drafter always accepted: chain odds %.2f", sure);
        CHECK(c.lookup_tail(2, sure, 6) == 6, "a sure chain and reliable lookups: tail %d of 6", c.lookup_tail(2, sure, 6));
        CHECK(c.lookup_tail(2, 0.0, 6) == 0, "a chain that cannot be accepted gets a tail of %d", c.lookup_tail(2, 0.0, 6));
        CHECK(c.lookup_tail(0, sure, 6) == 0, "a round that drafted nothing gets a tail");
        // The verify call is charged at its full width, and the tail is learnt as a lookup only
        // when the chain before it was accepted whole (else its tokens were never tested).
        const double tested = costs.lookup_tested[0];
        c.update(2, 1, 2 * 3.4, 80.0, nullptr, 4, 0);
        CHECK(costs.lookup_tested[0] == tested, "a tail behind a broken chain was learnt as a lookup");
        CHECK(costs.verify_ms[7] > pts[7] + 1 && std::abs(costs.verify_ms[3] - pts[3]) < 1e-9,
              "a 7-wide round's verify cost was charged to width 3 (%.1f / %.1f ms)", costs.verify_ms[3], costs.verify_ms[7]);
        for (int r = 0; r < 30; ++r) c.update(2, 2, 2 * 3.4, pts[7], nullptr, 4, 0);
        CHECK(c.lookup_tail(2, sure, 6) == 0, "tails never accepted are still verified (%d of 6)", c.lookup_tail(2, sure, 6));
        // A drafter seldom accepted whole makes the same lookups worth less behind it.
        CallCosts costs2;
        for (int n = 1; n <= 9; ++n) costs2.record_verify(static_cast<size_t>(n), pts[n]);
        DraftLengthController d(2, 2, &costs2);
        for (int r = 0; r < 20; ++r) d.update_lookup(6, r % 2 ? 6 : 1, pts[7]);
        for (int r = 0; r < 20; ++r) d.update(2, 0, 2 * 3.4, pts[3]);
        CHECK(d.lookup_tail(2, d.chain_acceptance(2, {}), 6) == 0, "a tail behind a chain seldom accepted (odds %.2f): %d",
              d.chain_acceptance(2, {}), d.lookup_tail(2, d.chain_acceptance(2, {}), 6));
        // Without costs (sampling): no tail.
        DraftLengthController s(2, 2, nullptr);
        CHECK(s.lookup_tail(2, 1.0, 6) == 0, "a tail without measured costs");
    }
    std::printf(failures ? "%d failure(s)\n" : "all draft-length checks passed\n", failures);
    return failures ? 1 : 0;
}
