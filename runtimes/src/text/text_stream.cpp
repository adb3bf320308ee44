#include "text/text_stream.hpp"

#include <algorithm>

#include "text/token_table.hpp"

namespace es {

// Tokens of prompt kept as left context for decoding (enough for any merge-sensitive decoder).
constexpr size_t kContextTokens = 4;
// A partial character is held back while fewer than this many tokens pushed in earlier rounds
// wait; beyond that the bytes are genuinely invalid and are shown as the detokenizer renders them.
// (Tokens of the current round do not count: one round may commit k + 1 >= 8 tokens at once.)
constexpr size_t kMaxHeldTokens = 8;
// Ids decoded per round at most (plus the round's new ones) before the window restarts.
constexpr size_t kWindowTokens = 24;

TextStream::TextStream(Tokenizer &tok, const TokenTable *table, const std::vector<int64_t> &prompt, std::vector<std::string> stop)
    : tok_(tok), table_(table), stop_(std::move(stop)) {
    size_t from = prompt.size() > kContextTokens ? prompt.size() - kContextTokens : 0;
    all_.assign(prompt.begin() + static_cast<long>(from), prompt.end());
    read_ = all_.size();
    start_window(0);
    for (const auto &s : stop_) max_stop_ = std::max(max_stop_, s.size());
}

// Spelling new tokens from the byte table gives the detokenizer's text (table_matches() checked
// that at load) at a fraction of its cost: a detokenizer call is ~0.2 ms, the loop's largest cost
// outside the models on a small target. A window is spelled from the table only when its left
// context spells to non-empty, well-formed UTF-8 (the detokenizer strips a leading space at the
// very start of a text and renders broken bytes its own way); it falls back to the detokenizer
// for the rest of the window as soon as its bytes stop being well-formed UTF-8 (other than a
// partial character that may still be completed).
std::string TextStream::render(size_t from, size_t to) {
    return fast_ ? table_->spelled(all_.data() + from, to - from) : tok_.decode(all_.data() + from, to - from);
}

void TextStream::start_window(size_t prefix) {
    prefix_ = prefix;
    fast_ = table_ != nullptr;
    if (fast_) {
        std::string left = render(prefix_, read_);
        if (!left.empty() && valid_utf8_prefix(left) == left.size()) {
            consumed_ = left.size();
            return;
        }
        fast_ = false;
    }
    consumed_ = render(prefix_, read_).size();
}

// A sliding decode window: all_[prefix_:] is decoded once per round and the text beyond the
// `consumed_` bytes already taken is new. The window restarts a few tokens back once it is
// long, so each round decodes O(k + kContextTokens) ids, not the whole generation.
std::string TextStream::decode_new(bool final, size_t before) {
    if (read_ == all_.size()) return {};
    const bool may_hold = !final && before - read_ < kMaxHeldTokens;
    std::string after = render(prefix_, all_.size());
    if (fast_) {
        const size_t valid = valid_utf8_prefix(after);
        if (valid < after.size() && !(may_hold && complete_utf8_prefix(after) == valid)) {
            fast_ = false;  // bytes the detokenizer renders its own way: it renders the rest of this window
            consumed_ = render(prefix_, read_).size();
            after = render(prefix_, all_.size());
        }
    }
    if (may_hold && complete_utf8_prefix(after) < after.size()) return {};
    read_ = all_.size();
    if (after.size() <= consumed_) return {};  // the new ids render as nothing (e.g. skipped specials)
    std::string delta = after.substr(consumed_);
    consumed_ = after.size();
    if (read_ - prefix_ > kWindowTokens) start_window(read_ - kContextTokens);
    return delta;
}

bool TextStream::table_matches(Tokenizer &tok, const TokenTable &table) {
    // Code, prose with the spaces a clean-up step would remove (" ." " ," " 's" " n't"), runs of
    // spaces, tabs and newlines, non-ASCII and emoji.
    static const char *const kProbes[] = {
        "def f(x):\n    return x  # café\n\n\tpass\r\n",
        "Hello , world . Isn 't it ? Yes ! He 's here , they 're not ; x = [1 , 2] .",
        "  two  spaces\tand\ttabs\n\n\n   indented",
        "Grüße, 世界 🙂 — naïve ünïcödé « quotes » 1.5 % $3",
    };
    auto spell = [&](const std::vector<int64_t> &ids, size_t from, size_t to) { return table.spelled(ids.data() + from, to - from); };
    for (const char *probe : kProbes) {
        const std::vector<int64_t> ids = tok.encode(probe);
        for (size_t from = 0; from < std::min<size_t>(2, ids.size()); ++from) {
            const std::string all = tok.decode(ids.data() + from, ids.size() - from);
            const std::string fast = spell(ids, from, ids.size());
            if (valid_utf8_prefix(fast) < fast.size()) continue;  // such a window is never spelled from the table
            for (size_t cut = from + 1; cut < ids.size(); ++cut) {
                const std::string left = spell(ids, from, cut);
                // nor does a window continue from nothing or from a partial character
                if (left.empty() || valid_utf8_prefix(left) < left.size()) continue;
                const std::string shown = tok.decode(ids.data() + from, cut - from);
                if (all.compare(0, shown.size(), shown) != 0 || all.compare(shown.size(), std::string::npos, fast, left.size()) != 0)
                    return false;
            }
        }
    }
    return true;
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
