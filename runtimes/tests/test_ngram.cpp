// Unit test of prompt-lookup drafting (the n-gram policy in drafting/policy.cpp), no model.
#include <vector>

#include "check.hpp"
#include "drafting/policy.hpp"

using namespace es;

int main() {
    auto ngram = make_ngram_policy(3);
    Proposal out;
    ngram->begin({});
    // The latest earlier occurrence of the longest suffix (up to 3 tokens) gives the drafts.
    ngram->propose({1, 2, 3, 9, 1, 2, 3, 7, 5, 1, 2, 3}, 3, out);
    CHECK((out.tokens == std::vector<int64_t>{7, 5, 1}), "latest match of [1 2 3] continues 7 5 1");
    ngram->propose({1, 2, 3, 9, 1, 2, 3, 7, 5, 1, 2, 3}, 1, out);
    CHECK((out.tokens == std::vector<int64_t>{7}), "k bounds the drafts");
    // A shorter suffix is tried when the longer one never occurred before.
    ngram->propose({4, 8, 6, 4, 8}, 4, out);
    CHECK((out.tokens == std::vector<int64_t>{6, 4, 8}), "[4 8] continues 6 4 8 (up to the end of the context)");
    ngram->propose({5, 6, 7}, 2, out);
    CHECK(out.tokens.empty(), "no earlier occurrence: no drafts");
    ngram->propose({3}, 2, out);
    CHECK(out.tokens.empty(), "a one-token context: no drafts");
    std::printf(failures ? "%d failure(s)\n" : "all n-gram checks passed\n", failures);
    return failures ? 1 : 0;
}
