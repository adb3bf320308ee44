#include "drafting/cross_vocab.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/bytes.hpp"
#include "core/error.hpp"
#include "core/hash.hpp"
#include "core/sampling.hpp"

namespace es {

// ---- FragmentCache ---------------------------------------------------------------------------

namespace {

using Clock = std::chrono::steady_clock;

constexpr char kMagic[4] = {'E', 'S', 'X', 'C'};
constexpr uint32_t kFormatVersion = 1;

}  // namespace

// A translation through the memo.
bool cached_tokenize(FragmentCache &cache, TokenTable &table, const std::string &text, std::vector<int64_t> &out) {
    bool ok = false;
    if (cache.find(text, &ok, &out)) return ok;
    const auto t0 = Clock::now();
    ok = table.encode_fragment(text, out);
    cache.insert(text, ok, out, std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    return ok;
}

// ---- CrossVocab ------------------------------------------------------------------------------

std::string default_translation_cache_dir() {
    auto env = [](const char *name) -> std::string {
        const char *v = std::getenv(name);
        return v && *v ? v : "";
    };
    std::string base = env("EDGESPEC_CACHE");
    if (base.empty() && !env("XDG_CACHE_HOME").empty()) base = env("XDG_CACHE_HOME") + "/edgespec";
    if (base.empty() && !env("HOME").empty()) base = env("HOME") + "/.cache/edgespec";
    return base.empty() ? "" : base + "/translation";
}

CrossVocab::CrossVocab(ov::Core &core, const ModelSpec &d, const ModelSpec &t, Tokenizer &target_tok, size_t tv,
                       const std::string &cache_dir)
    : draft_tok(core, d.tokenizer_file, d.detokenizer_file),
      draft(d.token_bytes_file, draft_tok, "drafter '" + d.name + "'"),
      target(t.token_bytes_file, target_tok, "the target"),
      draft_eos(d.eos),
      target_eos(t.eos),
      target_vocab(tv) {
    if (cache_dir.empty()) return;
    // The key: what a translation depends on, i.e. both tokenizers (IR files) and byte tables.
    uint64_t key = fnv1a(&kFormatVersion, sizeof kFormatVersion);
    for (const std::string *f : {&d.tokenizer_file, &t.tokenizer_file}) {
        for (const std::string &path : {*f, f->substr(0, f->size() - 4) + ".bin"}) {
            try {
                const std::string bytes = read_file(path);
                key = fnv1a(bytes.data(), bytes.size(), key);
            } catch (const Error &) {
                key = fnv1a(path.data(), path.size(), key);  // no .bin beside the .xml
            }
        }
    }
    key = draft.fingerprint(target.fingerprint(key));
    cache_key = key;
    char name[64];
    std::snprintf(name, sizeof name, "/xvocab-%016llx.bin", static_cast<unsigned long long>(key));
    cache_file = cache_dir + name;
    std::string data;
    try {
        data = read_file(cache_file);
    } catch (const Error &) {
        return;  // none yet
    }
    const char *p = data.data(), *end = data.data() + data.size();
    uint32_t version = 0;
    uint64_t file_key = 0, sum = 0;
    const bool framed =
        data.size() >= 24 && std::memcmp(p, kMagic, 4) == 0 && (std::memcpy(&sum, end - 8, 8), sum == fnv1a(p, data.size() - 8));
    p += 4;
    end -= 8;
    if (!framed || !get(p, end, version) || !get(p, end, file_key)) {
        cache_warning = "The translation cache " + cache_file + " is corrupt; starting with an empty one (it is rewritten).";
        return;
    }
    if (version != kFormatVersion || file_key != key) return;  // another format or pair: rewritten on save
    if (!to_draft.read(p, end, static_cast<size_t>(d.vocab_size)) || !to_target.read(p, end, tv) || p != end) {
        to_draft = FragmentCache();
        to_target = FragmentCache();
        cache_warning = "The translation cache " + cache_file + " is corrupt; starting with an empty one (it is rewritten).";
        return;
    }
    cache_loaded = to_draft.size() + to_target.size();
}

CrossVocab::~CrossVocab() { save(); }

void CrossVocab::save(bool after_generation) {
    const size_t added = to_draft.added + to_target.added;
    if (cache_file.empty() || added == 0 || (after_generation && added < kSaveEvery)) return;
    std::string out(kMagic, 4);
    put<uint32_t>(out, kFormatVersion);
    put<uint64_t>(out, cache_key);
    to_draft.write(out);
    to_target.write(out);
    put<uint64_t>(out, fnv1a(out.data(), out.size()));
    // Atomic: a reader sees the old file or the new one, never half of one.
    const std::string dir = cache_file.substr(0, cache_file.rfind('/'));
    const std::string tmp = cache_file + ".tmp" + std::to_string(static_cast<long long>(::getpid()));
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
        // a parent may be missing too: make the chain
        for (size_t i = 1; i < dir.size(); ++i)
            if (dir[i] == '/') ::mkdir(dir.substr(0, i).c_str(), 0755);
        ::mkdir(dir.c_str(), 0755);
    }
    std::FILE *f = std::fopen(tmp.c_str(), "wb");
    if (!f) return;
    const bool ok = std::fwrite(out.data(), 1, out.size(), f) == out.size();
    if (std::fclose(f) != 0 || !ok || std::rename(tmp.c_str(), cache_file.c_str()) != 0) {
        std::remove(tmp.c_str());
        return;
    }
    to_draft.mark_saved();
    to_target.mark_saved();
}

// ---- the policy ------------------------------------------------------------------------------

namespace {

constexpr size_t kWordBackoff = 8;  // tokens the drafter's re-tokenization may reach back for a word start
constexpr size_t kMaxPending = 16;  // longest tail token healing leaves for the draft to spell

class CrossVocabPolicy final : public Policy {
public:
    CrossVocabPolicy(Model &draft, CrossVocab &xv, size_t draft_context, const DraftContext &ctx)
        : draft_(draft),
          xv_(xv),
          draft_context_(draft_context),
          ctx_(ctx),
          hits0_(hits()),
          misses0_(misses()),
          disk_hits0_(xv.to_draft.disk_hits + xv.to_target.disk_hits),
          miss_ms0_(xv.to_draft.miss_ms + xv.to_target.miss_ms) {}

    ~CrossVocabPolicy() override { xv_.save(/*after_generation=*/true); }

    void add_stats(es_stats &st) const override {
        st.translation_hits = hits() - hits0_;
        st.translation_misses = misses() - misses0_;
        st.translation_disk_hits = xv_.to_draft.disk_hits + xv_.to_target.disk_hits - disk_hits0_;
        st.translation_ms = xv_.to_draft.miss_ms + xv_.to_target.miss_ms - miss_ms0_;
        st.draft_window_slides = slides_;
    }

    void begin(const std::vector<int64_t> &) override {
        draft_.reset();
        fed_.clear();
        ends_.clear();
        fed_text_.clear();
        text_.clear();
        dtext_.clear();
        win_from_ = sink_end_ = 0;
        read_ = synced_ = proposed_ = 0;
        strip_ = !xv_.target.prefix().empty();
        heal_ = true;
    }

    void propose(const std::vector<int64_t> &context, int k, Proposal &out) override {
        out.clear();
        key_.clear();
        read(context);
        // The drafter reads the text up to `end`; what follows is `pending`, which the draft must
        // spell first: an unfinished character, and -- token healing -- a tail that ends inside
        // one of the drafter's tokens (the target's tokens end elsewhere): the drafter re-drafts it
        // as it would tokenize it rather than read a split of it it never saw ("Fib" + "ona").
        const size_t unfinished = utf8_incomplete_tail(dtext_);
        // Step budget: 2k + 2 steps that add text past `pending` and end at a character boundary
        // (a character spelled in byte tokens, or pending text re-spelled, costs no budget), and
        // at most three times that in all.
        const int budget = 2 * k + 2, max_steps = 3 * budget;
        proposed_ = 0;
        size_t end = 0;
        const float *logits = nullptr;
        for (int attempt = 0; attempt < 2 && !logits; ++attempt) {  // the second after a slide
            end = dtext_.size() - unfinished;
            const size_t same = held_text(end);
            if (heal_ && !(same == end && std::binary_search(ends_.begin(), ends_.end(), end))) end = heal(end);
            bool full = false;
            logits = sync(end, same, static_cast<size_t>(max_steps), &full, out);
            if (!logits && (!full || !slide(end, static_cast<size_t>(max_steps)))) return;
        }
        if (!logits) return;

        // 2. draft greedily until the drafted text likely gives k + 1 target tokens.
        const TokenTable &dt = xv_.draft;
        const std::string pending = dtext_.substr(end);
        const size_t want = static_cast<size_t>(k) + 1, dv = draft_.vocab();
        const double per_token = bytes_per_token();
        size_t need = pending.size() + static_cast<size_t>(std::ceil(static_cast<double>(want) * per_token));
        drafted_.clear();
        bool ended = false;  // the drafter ended the text (EOS)
        for (int step = 0, counted = 0; step < max_steps; ++step) {
            if (ctx_.stop_prob > 0.f && step > 0 && top1_prob(logits, dv) < ctx_.stop_prob) break;
            const int64_t d = argmax(logits, dv);
            if (dt.special(d)) {
                ended = std::find(xv_.draft_eos.begin(), xv_.draft_eos.end(), d) != xv_.draft_eos.end();
                break;
            }
            const std::string_view b = dt.bytes(d);
            drafted_.append(b);
            const size_t n = std::min(drafted_.size(), pending.size());
            if (drafted_.compare(0, n, pending, 0, n) != 0) return;  // it does not spell the pending text
            if (drafted_.size() > pending.size() && utf8_incomplete_tail(drafted_) == 0) ++counted;
            if (drafted_.size() >= need) {
                bool complete;
                if (!translate(pending.size(), unfinished > 0, &complete)) return;
                if (tids_.size() >= want) break;
                need = drafted_.size() + static_cast<size_t>(std::ceil(static_cast<double>(want - tids_.size()) * per_token));
            }
            if (counted == budget || step + 1 == max_steps) break;  // the last step needs no logits
            logits = draft_.forward(&d, 1, 1);
            fed_.push_back(d);
            ends_.push_back(end + drafted_.size());
            fed_text_.append(b);
        }

        // 3. translate: the target ids that spell the drafted text; the last one may still merge
        //    with what would follow, unless the drafter ended the text.
        bool complete = false;
        if (!translate(pending.size(), unfinished > 0, &complete)) return;
        size_t n = tids_.size();
        const bool final = ended && complete;
        if (!final && n > 0) --n;
        n = std::min(n, static_cast<size_t>(k));
        out.tokens.assign(tids_.begin(), tids_.begin() + static_cast<long>(n));
        if (final && n < static_cast<size_t>(k) && !xv_.target_eos.empty()) out.tokens.push_back(xv_.target_eos[0]);
        proposed_ = out.tokens.size();
    }

    // The next sync reads what was committed; heal the next round's tail only if the drafter
    // agreed with all it proposed (after a rejection the tail is the target's correction, which
    // the drafter would not re-draft).
    void accept(size_t n_accepted, const std::vector<int64_t> &) override { heal_ = proposed_ > 0 && n_accepted == proposed_; }
    void observe(size_t, const std::vector<int64_t> &) override { heal_ = true; }  // as at a sequence's start
    int64_t compactions() const override { return draft_.compactions(); }

private:
    int64_t hits() const { return xv_.to_draft.hits + xv_.to_target.hits; }
    int64_t misses() const { return xv_.to_draft.misses + xv_.to_target.misses; }

    // The committed target ids as text (target bytes; the target's own dummy prefix dropped).
    void read(const std::vector<int64_t> &context) {
        if (context.size() < read_) begin(context);  // a sequence this policy has not seen begin
        const std::string &p = xv_.target.prefix();
        for (; read_ < context.size(); ++read_) {
            std::string_view b = xv_.target.bytes(context[read_]);
            if (strip_ && !b.empty()) {
                if (b.substr(0, p.size()) == p) b.remove_prefix(p.size());
                strip_ = false;
            }
            text_.append(b);
            dtext_.append(b);
        }
    }

    static bool space(const std::string &t, size_t at) { return t[at] == ' ' || t[at] == '\n' || t[at] == '\t'; }
    bool space(size_t at) const { return space(dtext_, at); }
    bool word(size_t at) const {
        const unsigned char c = static_cast<unsigned char>(dtext_[at]);
        return c >= 0x80 || c == '_' || (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
    }

    // Where token healing lets the drafter's context end: before a trailing word (if any) and
    // the white space in front of it (tokenizers join white space to the next word: "▁a", " a",
    // "\n▁▁▁▁"); unchanged when that tail is longer than kMaxPending bytes.
    size_t heal(size_t end) const {
        size_t at = end;
        while (at > 0 && end - at < kMaxPending && word(at - 1)) --at;
        while (at > 0 && end - at < kMaxPending && space(at - 1)) --at;
        return end - at < kMaxPending ? at : end;
    }

    // Length of the committed text the drafter's cache still spells (dtext_[0, synced_) is known
    // to: committed text never changes).
    size_t held_text(size_t end) const {
        size_t same = std::min(synced_, end);
        const size_t lim = std::min(fed_text_.size(), end);
        while (same < lim && fed_text_[same] == dtext_[same]) ++same;
        return same;
    }

    // Committed text per committed target token (how much text k + 1 target tokens take).
    double bytes_per_token() const {
        return read_ ? std::clamp(static_cast<double>(text_.size()) / static_cast<double>(read_), 1.0, 16.0) : 4.0;
    }

    // 1. sync: brings the drafter's cache to a tokenization of dtext_[0, end) and returns the
    //    logits after it; nullptr when the drafter cannot follow (text it cannot spell, no room).
    //    same: held_text(end) (computed for a longer end is fine: it is capped here). *full: it
    //    could not follow because the window (or the drafter's context) is full. A call that
    //    reads the text from its start or from the sinks on is charged to out.prefill_*.
    const float *sync(size_t end, size_t same, size_t max_steps, bool *full, Proposal &out) {
        TokenTable &dt = xv_.draft;
        // What the drafter holds that is still committed text: the tokens inside the common prefix.
        same = std::min(same, end);
        size_t m = static_cast<size_t>(std::upper_bound(ends_.begin(), ends_.end(), same) - ends_.begin());
        // One token of margin (it may merge with the new text); never restart inside a character;
        // and, within a few tokens, restart where a run of white space starts (before " word",
        // "\n    "), so the drafter reads the pieces it learned rather than splits of them
        // ("R" + "eturn", "▁▁▁▁" + "▁▁▁▁").
        if (m > 0) --m;
        while (m > 0 && (static_cast<unsigned char>(dtext_[ends_[m - 1]]) & 0xC0) == 0x80) --m;
        for (size_t back = m; back > 0 && m - back < kWordBackoff; --back) {
            const size_t at = ends_[back - 1];
            if (at < end && space(at) && (at == 0 || !space(at - 1))) {
                m = back;
                break;
            }
        }
        size_t from = m ? ends_[m - 1] : 0, skip = 0;
        if (from == 0) {
            m = 0;  // the start of the text: tokenize all of it as one input (BOS, dummy prefix)
            if (!dt.encode_whole(dtext_.substr(0, end), ids_, &skip)) return nullptr;
        } else if (!cached_tokenize(xv_.to_draft, dt, dtext_.substr(from, end - from), ids_)) {
            return nullptr;
        }
        // Positions whose token is unchanged keep their KV; the rest is fed in one call.
        size_t j = 0;
        while (j < ids_.size() && m + j < fed_.size() && fed_[m + j] == ids_[j]) ++j;
        size_t keep = m + j;
        feed_.assign(ids_.begin() + static_cast<long>(j), ids_.end());
        token_ends(ids_, from, skip, j, feed_ends_);
        if (feed_.empty()) {  // nothing new: re-feed the last token for the logits after it
            if (keep == 0) return nullptr;
            --keep;
            feed_.assign(1, fed_[keep]);
            feed_ends_.assign(1, ends_[keep]);
        }
        if (keep + feed_.size() + max_steps >= window()) {  // the window (or the drafter's context) is full
            *full = true;
            return nullptr;
        }
        if (!in_draft_vocab(feed_.data(), feed_.size())) return nullptr;
        draft_.rollback(keep);
        fed_.resize(keep);
        ends_.resize(keep);
        const auto t0 = std::chrono::steady_clock::now();
        const float *logits = draft_.forward(feed_.data(), feed_.size(), 1);
        if (keep <= kDraftSinkTokens) {  // the text's start or a slide's recent part: a context read
            out.prefill_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
            out.prefill_tokens += feed_.size();
        }
        fed_.insert(fed_.end(), feed_.begin(), feed_.end());
        ends_.insert(ends_.end(), feed_ends_.begin(), feed_ends_.end());
        fed_text_.resize(same);  // equal to dtext_ up to `same`
        fed_text_.append(dtext_, same, end - same);
        synced_ = end;
        return logits;
    }

    // Into out: the text offset where each of ids[first..] ends, the ids spelling text from offset
    // `from` on after `skip` bytes they spell in front of it (a whole text's BOS / dummy prefix).
    void token_ends(const std::vector<int64_t> &ids, size_t from, size_t skip, size_t first, std::vector<size_t> &out) const {
        out.clear();
        for (size_t i = 0, pos = from; i < ids.size(); ++i) {
            const size_t b = xv_.draft.bytes(ids[i]).size(), cut = std::min(skip, b);
            skip -= cut;
            pos += b - cut;
            if (i >= first) out.push_back(pos);
        }
    }

    bool in_draft_vocab(const int64_t *ids, size_t n) const {
        for (size_t i = 0; i < n; ++i)
            if (ids[i] < 0 || static_cast<size_t>(ids[i]) >= draft_.vocab()) return false;
        return true;
    }

    // The most drafter tokens the drafter reads: draft_window (when set) within its own context.
    size_t window() const {
        return ctx_.draft_window > 0 ? std::min(draft_context_, static_cast<size_t>(ctx_.draft_window)) : draft_context_;
    }

    // Slides the drafter's view of the text, as the same-vocabulary drafter does with tokens: it
    // keeps reading the text's first kDraftSinkTokens drafter tokens (attention sinks) and re-reads
    // only the latest window() / 2 tokens' worth of text after them, from the start of a run of
    // white space where one is near. dtext_ becomes text_[0, sink_end_) + text_[win_from_, ...);
    // the next sync() re-encodes and feeds the recent part. end: the committed text sync() wanted.
    // False when there is nothing to drop, or when a round of max_steps would not fit after the
    // recent part either.
    bool slide(size_t end, size_t max_steps) {
        if (kDraftSinkTokens + window() / 2 + max_steps + 2 >= window()) return false;
        const std::vector<size_t> *at_end = &ends_;  // where the committed tokens end
        size_t held = static_cast<size_t>(std::upper_bound(ends_.begin(), ends_.end(), synced_) - ends_.begin());
        if (held < kDraftSinkTokens + 2) {  // little read yet (a long prompt): its first tokens become the sinks
            if (win_from_ != 0) return false;
            size_t skip = 0;
            if (!xv_.draft.encode_whole(dtext_.substr(0, end), ids_, &skip) || ids_.size() < kDraftSinkTokens + 2) return false;
            token_ends(ids_, 0, skip, 0, all_ends_);
            if (!in_draft_vocab(ids_.data(), kDraftSinkTokens)) return false;
            draft_.rollback(0);
            draft_.forward(ids_.data(), kDraftSinkTokens, 1);
            fed_.assign(ids_.begin(), ids_.begin() + static_cast<long>(kDraftSinkTokens));
            ends_.assign(all_ends_.begin(), all_ends_.begin() + static_cast<long>(kDraftSinkTokens));
            fed_text_.assign(dtext_, 0, ends_.back());
            synced_ = ends_.back();
            at_end = &all_ends_;
            held = ids_.size();
        }
        const std::vector<size_t> &e = *at_end;
        if (win_from_ == 0) sink_end_ = e[kDraftSinkTokens - 1];  // first slide: dtext_ == text_ so far
        const size_t recent = window() / 2;
        const size_t first = std::max(kDraftSinkTokens + 1, held > recent ? held - recent : 0);
        if (first >= held || e[first - 1] <= sink_end_) return false;
        size_t from = win_from_ ? win_from_ + (e[first - 1] - sink_end_) : e[first - 1];
        for (size_t at = from, lim = std::min(text_.size(), from + 4 * kWordBackoff); at < lim; ++at)
            if (space(text_, at) && !space(text_, at - 1)) {
                from = at;
                break;
            }
        while (from < text_.size() && (static_cast<unsigned char>(text_[from]) & 0xC0) == 0x80) ++from;
        if (from >= text_.size() || from <= sink_end_) return false;
        win_from_ = from;
        dtext_.assign(text_, 0, sink_end_);
        dtext_.append(text_, from, std::string::npos);
        draft_.rollback(kDraftSinkTokens);
        fed_.resize(kDraftSinkTokens);
        ends_.resize(kDraftSinkTokens);
        fed_text_.assign(dtext_, 0, sink_end_);
        synced_ = sink_end_;
        ++slides_;
        return true;
    }

    // The target ids spelling the drafted text past `pending` bytes into tids_: the bytes that
    // finish a character the committed text began (finish), then well-formed UTF-8 up to the
    // first byte that is not (an unfinished character, a stray byte); cut at the first id the
    // target cannot take. *complete: nothing was cut. False when the target's tokens cannot
    // spell it.
    bool translate(size_t pending, bool finish, bool *complete) {
        std::string_view all(drafted_);
        all.remove_prefix(std::min(pending, all.size()));
        size_t lead = 0;
        while (finish && lead < 3 && lead < all.size() && (static_cast<unsigned char>(all[lead]) & 0xC0) == 0x80) ++lead;
        const size_t cut = lead + valid_utf8_prefix(all.substr(lead));
        *complete = cut == all.size();
        if (cut == 0) {
            tids_.clear();
            key_.clear();
            return true;
        }
        if (key_.size() == cut && all.compare(0, cut, key_) == 0) return key_ok_;  // translated this round already
        key_.assign(all.data(), cut);
        key_ok_ = cached_tokenize(xv_.to_target, xv_.target, key_, tids_);
        for (size_t i = 0; i < tids_.size(); ++i)
            if (xv_.target.special(tids_[i]) || static_cast<size_t>(tids_[i]) >= xv_.target_vocab) {
                tids_.resize(i);
                break;
            }
        return key_ok_;
    }

    Model &draft_;
    CrossVocab &xv_;
    size_t draft_context_;
    DraftContext ctx_;
    int64_t hits0_, misses0_, disk_hits0_;
    double miss_ms0_;
    std::string text_;     // committed text: bytes of the committed target ids
    std::string dtext_;    // the text the drafter reads: text_, or once sliding its sinks + recent part
    size_t win_from_ = 0;  // sliding: where the recent part starts in text_ (0: not sliding)
    size_t sink_end_ = 0;  // sliding: the text the sink tokens spell, text_[0, sink_end_)
    int64_t slides_ = 0;
    size_t read_ = 0;           // target ids of the context already in text_
    bool strip_ = false;        // the target's dummy prefix is still to be dropped
    bool heal_ = true;          // token healing this round (see propose)
    size_t proposed_ = 0;       // tokens proposed last round
    std::vector<int64_t> fed_;  // draft ids in the drafter's cache, position by position
    std::vector<size_t> ends_;  // text offset where each fed token ends
    std::string fed_text_;      // the text the fed tokens spell (text_[0, synced_) + fed drafts)
    size_t synced_ = 0;         // text_[0, synced_) is known to equal fed_text_
    std::string drafted_;       // bytes drafted this round, from the synced end
    std::string key_;           // the text tids_ translates (a per-round memo)
    bool key_ok_ = false;
    std::vector<int64_t> ids_, feed_, tids_;  // scratch
    std::vector<size_t> feed_ends_, all_ends_;
};

}  // namespace

std::unique_ptr<Policy> make_cross_vocab_policy(Model &draft, CrossVocab &xv, size_t draft_context, const DraftContext &ctx) {
    return std::make_unique<CrossVocabPolicy>(draft, xv, draft_context, ctx);
}

}  // namespace es
