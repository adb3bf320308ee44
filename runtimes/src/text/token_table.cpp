#include "text/token_table.hpp"

#include <algorithm>
#include <cstring>

#include "core/bundle.hpp"
#include "core/error.hpp"
#include "core/hash.hpp"

namespace es {

size_t utf8_incomplete_tail(std::string_view s) {
    size_t cont = 0;
    while (cont < 3 && cont < s.size() && (static_cast<unsigned char>(s[s.size() - 1 - cont]) & 0xC0) == 0x80) ++cont;
    if (cont == s.size()) return 0;  // continuation bytes only (a character begun earlier): nothing to hold back
    const unsigned char lead = static_cast<unsigned char>(s[s.size() - 1 - cont]);
    const size_t need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
    return lead >= 0xC0 && cont < need ? cont + 1 : 0;
}

TokenTable::TokenTable(const std::string &file, Tokenizer &tok, const std::string &who) : tok_(tok) {
    auto bad = [&](const std::string &why) {
        return Error(ES_ERR_BUNDLE, file + " (the token byte table of " + who + ") " + why + "; re-export the bundle.");
    };
    const std::string data = read_file(file);
    uint32_t head[3] = {0, 0, 0};  // version, n, blob size (little-endian hosts)
    if (data.size() < 16 || data.compare(0, 4, "ESTB") != 0) throw bad("is not a token byte table");
    std::memcpy(head, data.data() + 4, sizeof head);
    const size_t n = head[1], size = head[2];
    if (head[0] != 1 || data.size() != 16 + 4 * (n + 1) + n + size) throw bad("is of another version or truncated");
    offsets_.resize(n + 1);
    std::memcpy(offsets_.data(), data.data() + 16, 4 * (n + 1));
    kinds_.assign(data.begin() + static_cast<long>(16 + 4 * (n + 1)), data.begin() + static_cast<long>(16 + 4 * (n + 1) + n));
    blob_ = data.substr(16 + 4 * (n + 1) + n);
    for (size_t i = 0; i < n; ++i)
        if (offsets_[i] > offsets_[i + 1] || offsets_[i + 1] > size || kinds_[i] > kByte) throw bad("is corrupt");
    // bytes -> id for spell(): the first text token of each byte string, else its byte token
    for (size_t i = 0; i < n; ++i) {
        std::string_view b = bytes(static_cast<int64_t>(i));
        if (b.empty() || kinds_[i] == kSpecial) continue;
        auto [it, fresh] = by_bytes_.emplace(std::string(b), static_cast<int64_t>(i));
        if (!fresh && kinds_[static_cast<size_t>(it->second)] == kByte && kinds_[i] != kByte) it->second = static_cast<int64_t>(i);
        longest_ = std::max(longest_, b.size());
    }
    // The dummy prefix: bytes of "a" minus "a" (" " for Llama-2 style tokenizers, else "").
    std::vector<int64_t> ids;
    for (int64_t id : tok_.encode("a"))
        if (!special(id)) ids.push_back(id);
    std::string a = spelled(ids);
    if (a.size() >= 1 && a.back() == 'a') prefix_ = a.substr(0, a.size() - 1);
    // The table must describe this tokenizer: a probe text spelled byte for byte.
    size_t skip = 0;
    if (!encode_whole("Hello, world: x = 1\n", ids, &skip)) throw bad("does not match its tokenizer");
}

uint64_t TokenTable::fingerprint(uint64_t h) const {
    h = fnv1a(offsets_.data(), offsets_.size() * sizeof(uint32_t), h);
    h = fnv1a(kinds_.data(), kinds_.size(), h);
    return fnv1a(blob_.data(), blob_.size(), h);
}

std::string_view TokenTable::bytes(int64_t id) const {
    if (special(id)) return {};
    const size_t i = static_cast<size_t>(id);
    return std::string_view(blob_).substr(offsets_[i], offsets_[i + 1] - offsets_[i]);
}

std::string TokenTable::spelled(const int64_t *ids, size_t n) const {
    std::string s;
    for (size_t i = 0; i < n; ++i) s.append(bytes(ids[i]));
    return s;
}

bool TokenTable::spell(std::string_view s, std::vector<int64_t> &out) const {
    std::string piece;
    while (!s.empty()) {
        size_t len = std::min(longest_, s.size());
        for (; len > 0; --len) {
            piece.assign(s.data(), len);
            auto it = by_bytes_.find(piece);
            if (it != by_bytes_.end()) {
                out.push_back(it->second);
                break;
            }
        }
        if (len == 0) return false;
        s.remove_prefix(len);
    }
    return true;
}

bool TokenTable::encode_fragment(const std::string &text, std::vector<int64_t> &out) {
    // Well-formed runs go through the tokenizer; a stray byte (the tokenizer cannot take it) is
    // spelled with a byte token.
    out.clear();
    std::vector<int64_t> part;
    for (size_t at = 0; at < text.size();) {
        const std::string_view rest = std::string_view(text).substr(at);
        const size_t ok = valid_utf8_prefix(rest);
        size_t bad = ok ? 0 : 1;  // a run of stray bytes: up to where well-formed text starts again
        while (bad && bad < rest.size() && valid_utf8_prefix(rest.substr(bad)) == 0) ++bad;
        part.clear();
        if (ok ? !encode_utf8_fragment(text.substr(at, ok), part) : !spell(rest.substr(0, bad), part)) {
            out.clear();
            return false;
        }
        out.insert(out.end(), part.begin(), part.end());
        at += ok ? ok : bad;
    }
    return true;
}

bool TokenTable::encode_utf8_fragment(const std::string &text, std::vector<int64_t> &out) {
    auto text_ids = [&](const std::string &t) {
        std::vector<int64_t> ids;
        for (int64_t id : tok_.encode(t))
            if (!special(id)) ids.push_back(id);
        return ids;
    };
    const std::string &p = prefix_;
    // A tokenizer with a dummy prefix spells " x" inside a text as it spells "x" at its start.
    if (!p.empty() && text.size() > p.size() && text.compare(0, p.size(), p) == 0) {
        out = text_ids(text.substr(p.size()));
        if (spelled(out) == text) return true;
    }
    out = text_ids(text);
    const std::string s = spelled(out);
    if (s == text) return true;
    // Otherwise the dummy prefix must sit at the start of the first token: drop it from there and
    // spell the rest of that token ("▁x" -> "x").
    std::vector<int64_t> head;
    if (p.empty() || out.empty() || s.size() != p.size() + text.size() || s.compare(0, p.size(), p) != 0 ||
        s.compare(p.size(), std::string::npos, text) != 0 || bytes(out[0]).substr(0, p.size()) != p ||
        !spell(bytes(out[0]).substr(p.size()), head))
        return false;
    head.insert(head.end(), out.begin() + 1, out.end());
    out.swap(head);
    return true;
}

bool TokenTable::encode_whole(const std::string &text, std::vector<int64_t> &out, size_t *skip) {
    // The well-formed head as one input; anything after a stray byte continues it as a fragment.
    // Leading specials (BOS) stay; specials after the text (an EOS some post-processors append) go.
    const size_t ok = valid_utf8_prefix(text);
    out = tok_.encode(text.substr(0, ok));
    const auto last = std::find_if(out.rbegin(), out.rend(), [&](int64_t id) { return !special(id); });
    if (last != out.rend()) out.erase(last.base(), out.end());
    const std::string s = spelled(out), head = text.substr(0, ok);
    *skip = 0;
    if (s != head) {
        if (prefix_.empty() || s.size() != prefix_.size() + ok || s.compare(0, prefix_.size(), prefix_) != 0 ||
            s.compare(prefix_.size(), std::string::npos, head) != 0) {
            out.clear();
            return false;
        }
        *skip = prefix_.size();
    }
    std::vector<int64_t> rest;
    if (!encode_fragment(text.substr(ok), rest)) {
        out.clear();
        return false;
    }
    out.insert(out.end(), rest.begin(), rest.end());
    return true;
}

}  // namespace es
