#include "text_stream.hpp"

#include <algorithm>

namespace es {

// Tokens of prompt kept as left context for decoding (enough for any merge-sensitive decoder).
constexpr size_t kContextTokens = 4;
// A partial character is held back while fewer than this many tokens pushed in earlier rounds
// wait; beyond that the bytes are genuinely invalid and are shown as the detokenizer renders them.
// (Tokens of the current round do not count: one round may commit k + 1 >= 8 tokens at once.)
constexpr size_t kMaxHeldTokens = 8;
// Ids decoded per round at most (plus the round's new ones) before the window restarts.
constexpr size_t kWindowTokens = 24;

TextStream::TextStream(Tokenizer &tok, const std::vector<int64_t> &prompt, std::vector<std::string> stop)
    : tok_(tok), stop_(std::move(stop)) {
    size_t from = prompt.size() > kContextTokens ? prompt.size() - kContextTokens : 0;
    all_.assign(prompt.begin() + static_cast<long>(from), prompt.end());
    prefix_ = 0;
    read_ = all_.size();
    consumed_ = tok_.decode(all_.data(), all_.size()).size();
    for (const auto &s : stop_) max_stop_ = std::max(max_stop_, s.size());
}

// A sliding decode window: all_[prefix_:] is decoded once per round and the text beyond the
// `consumed_` bytes already taken is new. The window restarts a few tokens back once it is
// long, so each round decodes O(k + kContextTokens) ids, not the whole generation.
std::string TextStream::decode_new(bool final, size_t before) {
    if (read_ == all_.size()) return {};
    std::string after = tok_.decode(all_.data() + prefix_, all_.size() - prefix_);
    if (!final && complete_utf8_prefix(after) < after.size() && before - read_ < kMaxHeldTokens) return {};
    read_ = all_.size();
    if (after.size() <= consumed_) return {};  // the new ids render as nothing (e.g. skipped specials)
    std::string delta = after.substr(consumed_);
    consumed_ = after.size();
    if (read_ - prefix_ > kWindowTokens) {
        prefix_ = read_ - kContextTokens;
        consumed_ = tok_.decode(all_.data() + prefix_, read_ - prefix_).size();
    }
    return delta;
}

std::string TextStream::release(bool final) {
    if (stopped_) return {};
    if (!stop_.empty()) {
        // A stop string may straddle old and new text: search from where it could start.
        size_t from = shown_ > max_stop_ ? shown_ - max_stop_ : 0;
        size_t cut = std::string::npos;
        for (const auto &s : stop_) {
            size_t at = text_.find(s, from);
            if (at != std::string::npos) cut = std::min(cut, at);
        }
        if (cut != std::string::npos) {
            text_.resize(cut);
            stopped_ = true;
            std::string delta = cut > shown_ ? text_.substr(shown_) : std::string();
            shown_ = text_.size();
            return delta;
        }
    }
    size_t safe = text_.size();
    if (!final) {
        // Hold back the longest tail that is a proper prefix of a stop string.
        for (const auto &s : stop_)
            for (size_t len = std::min(s.size() - 1, text_.size()); len > 0; --len)
                if (text_.size() - len >= shown_ && text_.compare(text_.size() - len, len, s, 0, len) == 0) {
                    safe = std::min(safe, text_.size() - len);
                    break;
                }
    }
    if (safe <= shown_) return {};
    std::string delta = text_.substr(shown_, safe - shown_);
    shown_ = safe;
    return delta;
}

std::string TextStream::push(const std::vector<int64_t> &ids) {
    if (stopped_ || ids.empty()) return {};
    const size_t before = all_.size();
    all_.insert(all_.end(), ids.begin(), ids.end());
    text_ += decode_new(false, before);
    return release(false);
}

std::string TextStream::finish() {
    if (stopped_) return {};
    text_ += decode_new(true, all_.size());
    return release(true);
}

}  // namespace es
