// Unit test of the translation memo (drafting/fragment_cache.cpp), no tokenizer: hits and misses,
// least-recently-used eviction, the byte format round trip, and malformed bytes refused whole.
#include <string>
#include <vector>

#include "check.hpp"
#include "drafting/fragment_cache.hpp"

using namespace es;

static void eviction_keeps_the_recently_used_half() {
    FragmentCache c(8);
    for (int i = 0; i < 8; ++i) c.insert("t" + std::to_string(i), true, {i});
    bool ok = false;
    std::vector<int64_t> ids;
    for (int i : {0, 1, 2, 3}) c.find("t" + std::to_string(i), &ok, &ids);  // 0..3 now recent
    c.insert("new", false, {});                                             // full: evicts 4..7
    CHECK(c.size() == 5, "size after eviction %zu", c.size());
    CHECK(c.find("t2", &ok, &ids) && ok && ids == std::vector<int64_t>{2}, "a recently used entry stays");
    CHECK(!c.find("t5", &ok, &ids), "a least recently used entry went");
    CHECK(c.find("new", &ok, &ids) && !ok, "the new entry is there, a 'cannot spell' one");
    CHECK(c.hits == 6 && c.misses == 1, "hits %lld misses %lld", (long long)c.hits, (long long)c.misses);
}

static void the_byte_format_round_trips_and_refuses_malformed_bytes() {
    FragmentCache a;
    a.insert("def", true, {5, 9});
    a.insert("Grüße", true, {7});
    a.insert("\xff", false, {});
    std::string bytes;
    a.write(bytes);
    FragmentCache b;
    const char *p = bytes.data();
    CHECK(b.read(p, bytes.data() + bytes.size(), 16) && p == bytes.data() + bytes.size(), "read back");
    bool ok = false;
    std::vector<int64_t> ids;
    CHECK(b.size() == 3 && b.find("def", &ok, &ids) && ok && (ids == std::vector<int64_t>{5, 9}), "an entry survives");
    CHECK(b.disk_hits == 1 && b.added == 0, "a hit on a read entry is a disk hit");
    FragmentCache c;
    p = bytes.data();
    CHECK(!c.read(p, bytes.data() + bytes.size(), 8) && c.size() == 0, "an id beyond the vocabulary refuses the whole file");
    for (size_t cut = 0; cut < bytes.size(); ++cut) {
        FragmentCache d;
        p = bytes.data();
        const bool read = d.read(p, bytes.data() + cut, 16);
        CHECK(!read && d.size() == 0, "truncated at %zu: refused, nothing added", cut);
    }
}

int main() {
    eviction_keeps_the_recently_used_half();
    the_byte_format_round_trips_and_refuses_malformed_bytes();
    std::printf(failures ? "%d failure(s)\n" : "all fragment-cache checks passed\n", failures);
    return failures ? 1 : 0;
}
