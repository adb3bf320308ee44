// Unit test of the draft-length controller on synthetic costs (no model, no OpenVINO):
//   c++ -std=c++17 -I runtimes/src runtimes/tests/test_draft_length.cpp runtimes/src/draft_length.cpp
// Each scenario runs rounds against a cost curve and an acceptance probability, and checks that
// adaptive k settles on the k that maximises tokens per ms, found here by brute force.
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>

#include "draft_length.hpp"

using es::CallCosts;
using es::DraftLengthController;

static int failures = 0;
#define CHECK(cond, ...)                                    \
    do {                                                    \
        if (!(cond)) {                                      \
            ++failures;                                     \
            std::printf("FAIL %s:%d: ", __FILE__, __LINE__); \
            std::printf(__VA_ARGS__);                       \
            std::printf("\n");                              \
        }                                                   \
    } while (0)

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
static int simulate(DraftLengthController &c, double a, double t_draft, const std::function<double(int)> &t_verify,
                    int rounds, unsigned seed, int *visits = nullptr) {
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
    std::printf(failures ? "%d failure(s)\n" : "all draft-length checks passed\n", failures);
    return failures ? 1 : 0;
}
