#include "drafting/fragment_cache.hpp"

#include "core/bytes.hpp"

#include <algorithm>
#include <cstring>
#include <iterator>

namespace es {

bool FragmentCache::find(const std::string &text, bool *ok, std::vector<int64_t> *ids) {
    auto it = map_.find(text);
    if (it == map_.end()) {
        ++misses;
        return false;
    }
    ++hits;
    Entry &e = it->second;
    if (e.from_disk) ++disk_hits;
    e.used = ++clock_;
    *ok = e.ok;
    *ids = e.ids;
    return true;
}

void FragmentCache::insert(const std::string &text, bool ok, const std::vector<int64_t> &ids, double ms) {
    miss_ms += ms;
    if (map_.size() >= capacity_) evict();
    if (map_.emplace(text, Entry{ok, false, ++clock_, ids}).second) ++added;
}

void FragmentCache::evict() {
    std::vector<uint64_t> used;
    used.reserve(map_.size());
    for (const auto &kv : map_) used.push_back(kv.second.used);
    auto mid = used.begin() + static_cast<long>(used.size() / 2);
    std::nth_element(used.begin(), mid, used.end());
    const uint64_t cut = *mid;
    for (auto it = map_.begin(); it != map_.end();) it = it->second.used < cut ? map_.erase(it) : std::next(it);
}

void FragmentCache::write(std::string &out) const {
    put<uint32_t>(out, static_cast<uint32_t>(map_.size()));
    for (const auto &[text, e] : map_) {
        put<uint8_t>(out, e.ok ? 1 : 0);
        put<uint32_t>(out, static_cast<uint32_t>(text.size()));
        out += text;
        put<uint32_t>(out, static_cast<uint32_t>(e.ids.size()));
        for (int64_t id : e.ids) put<int32_t>(out, static_cast<int32_t>(id));
    }
}

bool FragmentCache::read(const char *&p, const char *end, size_t vocab) {
    uint32_t count = 0;
    if (!get(p, end, count)) return false;
    std::vector<std::pair<std::string, Entry>> entries;
    for (uint32_t i = 0; i < count; ++i) {
        uint8_t ok = 0;
        uint32_t len = 0, n = 0;
        if (!get(p, end, ok) || ok > 1 || !get(p, end, len) || static_cast<size_t>(end - p) < len) return false;
        std::string text(p, len);
        p += len;
        if (!get(p, end, n) || static_cast<size_t>(end - p) / 4 < n) return false;
        Entry e{ok == 1, true, 0, std::vector<int64_t>(n)};
        for (uint32_t j = 0; j < n; ++j) {
            int32_t id = 0;
            get(p, end, id);
            if (id < 0 || static_cast<size_t>(id) >= vocab) return false;
            e.ids[j] = id;
        }
        entries.emplace_back(std::move(text), std::move(e));
    }
    for (auto &[text, e] : entries) {
        if (map_.size() >= capacity_) break;
        map_.emplace(std::move(text), std::move(e));
    }
    added = 0;
    return true;
}

}  // namespace es
