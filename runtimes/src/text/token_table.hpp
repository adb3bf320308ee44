// A vocabulary as bytes: the byte string of every token (the bundle's token_bytes.bin, written at
// export by export/token_bytes.py) and how the model's tokenizer spells text with them. The text
// stream spells streamed text from it; the cross-vocabulary drafter compares two models' text
// byte for byte through two of them.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "text/tokenizer.hpp"

namespace es {

// The byte strings of one vocabulary (token_bytes.bin) and how its tokenizer spells text.
class TokenTable {
public:
    // file: the model's token_bytes.bin; tok: the same model's tokenizer (kept by reference);
    // who: the model's name, for messages. Throws ES_ERR_BUNDLE when the file is malformed or
    // does not match the tokenizer.
    TokenTable(const std::string &file, Tokenizer &tok, const std::string &who);

    // Control tokens (BOS, EOS, <unk>, ...) and ids past the table: no bytes, never proposed.
    bool special(int64_t id) const {
        return id < 0 || static_cast<size_t>(id) >= kinds_.size() || kinds_[static_cast<size_t>(id)] == kSpecial;
    }
    std::string_view bytes(int64_t id) const;
    // The bytes of ids[0..n) one after another (special tokens spell nothing).
    std::string spelled(const int64_t *ids, size_t n) const;
    std::string spelled(const std::vector<int64_t> &ids) const { return spelled(ids.data(), ids.size()); }
    // What the tokenizer puts in front of a whole text (Llama-2's "▁" dummy prefix), or "".
    const std::string &prefix() const { return prefix_; }
    // A 64-bit FNV-1a hash of the table (offsets, kinds, bytes), continued from h.
    uint64_t fingerprint(uint64_t h) const;

    // Ids that spell exactly `text` where it continues earlier text: no special tokens and no
    // dummy prefix; bytes that are not well-formed UTF-8 are spelled with byte tokens. False
    // when the tokens cannot spell it byte for byte.
    bool encode_fragment(const std::string &text, std::vector<int64_t> &out);
    // Ids of `text` as a whole input, as the model saw text in training (BOS, dummy prefix);
    // *skip = bytes of dummy prefix in front of the text. False when they do not spell it.
    bool encode_whole(const std::string &text, std::vector<int64_t> &out, size_t *skip);

private:
    static constexpr uint8_t kSpecial = 1, kByte = 2;                               // kinds (0 = text), as in edgespec/bundle.py
    bool encode_utf8_fragment(const std::string &text, std::vector<int64_t> &out);  // text: well-formed UTF-8
    // Longest-match spelling of s with the table's tokens (text tokens before byte tokens).
    bool spell(std::string_view s, std::vector<int64_t> &out) const;

    Tokenizer &tok_;
    std::vector<uint32_t> offsets_;  // token i = blob_[offsets_[i], offsets_[i + 1])
    std::vector<uint8_t> kinds_;
    std::string blob_;
    std::string prefix_;
    std::unordered_map<std::string, int64_t> by_bytes_;  // bytes -> id, for spell()
    size_t longest_ = 0;                                 // longest token, in bytes
};

// Number of bytes at the end of s that start a UTF-8 character but do not finish it (0..3).
size_t utf8_incomplete_tail(std::string_view s);

}  // namespace es
