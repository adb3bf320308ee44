// The cross-vocabulary drafter's translation memo: text -> the ids a tokenizer spells it with (or
// "cannot"). Tokenizers are deterministic, so an entry stays right as long as the tokenizer files
// do: it is kept across generations and, written to a file by CrossVocab, across processes.
// Bounded: when full, the least recently used half goes. Pure C++ (unit-tested through CTest).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace es {

class FragmentCache {
public:
    static constexpr size_t kDefaultCapacity = size_t{1} << 15;
    explicit FragmentCache(size_t capacity = kDefaultCapacity) : capacity_(capacity) {}

    // The entry for text, or nullptr (counts a hit or a miss; a hit makes it recently used).
    // *ok: whether the tokenizer could spell the text; *ids: its ids.
    bool find(const std::string &text, bool *ok, std::vector<int64_t> *ids);
    // Adds an entry (evicting the least recently used half first when full). miss_ms: what
    // computing it cost, for the stats.
    void insert(const std::string &text, bool ok, const std::vector<int64_t> &ids, double miss_ms = 0);
    size_t size() const { return map_.size(); }

    // The entries as bytes: u32 count, then per entry u8 ok, u32 length, the text, u32 n, n i32 ids
    // (little-endian). read() adds the entries of [p, end) whose ids are all below vocab, advancing
    // p; on malformed bytes it adds nothing and returns false.
    void write(std::string &out) const;
    bool read(const char *&p, const char *end, size_t vocab);

    int64_t hits = 0, misses = 0;
    int64_t disk_hits = 0;  // hits on entries read from a file (translations an earlier run saved)
    double miss_ms = 0;     // time the misses cost
    size_t added = 0;       // entries added since the last read() or mark_saved()
    void mark_saved() { added = 0; }

private:
    struct Entry {
        bool ok = false;
        bool from_disk = false;
        uint64_t used = 0;  // the cache's clock at the last use
        std::vector<int64_t> ids;
    };
    void evict();

    size_t capacity_;
    uint64_t clock_ = 0;
    std::unordered_map<std::string, Entry> map_;
};

}  // namespace es
