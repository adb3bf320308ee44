// Incremental, UTF-8-safe detokenization with stop strings: turns the growing list of
// generated ids into text deltas that never split a character, never show text that may turn
// out to be the start of a stop string, and concatenate exactly to the final text.
#pragma once
#include <string>
#include <vector>

#include "text/tokenizer.hpp"

namespace es {

class TokenTable;

class TextStream {
public:
    // prompt: the prompt ids (its last few give the detokenizer left context, so a leading
    // space of the first generated token is kept by metaspace-style decoders).
    // table: the target's token byte table when table_matches() said it spells text as the
    // detokenizer does (null: every round runs the detokenizer).
    TextStream(Tokenizer &tok, const TokenTable *table, const std::vector<int64_t> &prompt, std::vector<std::string> stop);

    // True when, on probe texts, appending tokens to a decoded window adds exactly their bytes
    // in `table` to the detokenizer's text (no clean-up of spaces, no other rewriting), so the
    // stream may spell new tokens from the table instead of running the detokenizer each round.
    static bool table_matches(Tokenizer &tok, const TokenTable &table);

    // Appends generated ids; returns the text now safe to show (may be empty).
    std::string push(const std::vector<int64_t> &ids);
    // End of generation: releases everything held back; returns the last delta.
    std::string finish();
    // True once a stop string appeared; text() then ends right before it.
    bool stopped() const { return stopped_; }
    const std::string &text() const { return text_; }

private:
    std::string decode_new(bool final, size_t before);  // before: all_.size() before this round's ids
    std::string release(bool final);
    void start_window(size_t prefix);            // decode window from all_[prefix]; sets consumed_
    std::string render(size_t from, size_t to);  // text of all_[from:to) as the window renders it

    Tokenizer &tok_;
    const TokenTable *table_;
    bool fast_ = false;  // this window is spelled from table_ (else by the detokenizer)
    std::vector<std::string> stop_;
    size_t max_stop_ = 0;
    std::vector<int64_t> all_;      // prompt tail + generated ids
    size_t prefix_ = 0, read_ = 0;  // decode window start; all_[read_:] is not yet decoded
    size_t consumed_ = 0;           // bytes of decode(all_[prefix_:read_]) already taken as text
    std::string text_;              // decoded text (cut at a stop string once one appears)
    size_t shown_ = 0;              // bytes of text_ already returned
    bool stopped_ = false;
};

}  // namespace es
