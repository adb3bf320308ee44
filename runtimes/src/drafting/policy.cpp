#include "drafting/policy.hpp"

#include <algorithm>
#include <chrono>

#include "drafting/draft_length.hpp"
#include "edgespec.h"

namespace es {

namespace {

class NullPolicy final : public Policy {
public:
    void begin(const std::vector<int64_t> &) override {}
    void propose(const std::vector<int64_t> &, int, Proposal &out) override { out.clear(); }
    void accept(size_t, const std::vector<int64_t> &) override {}
};

class DraftModelPolicy final : public Policy {
public:
    DraftModelPolicy(Model &draft, const std::vector<int32_t> &id_map, const std::vector<int32_t> &input_map, size_t draft_context,
                     const DraftContext &ctx)
        : draft_(draft), id_map_(id_map), input_map_(input_map), draft_context_(draft_context), ctx_(ctx) {
        // The window never outgrows the drafter's own context (a round adds up to k tokens), so a
        // drafter keeps drafting past its own context length; one too short to slide stops there.
        window_ = draft_context_ >= kMinWindow + ES_MAX_DRAFT + 2 ? draft_context_ - ES_MAX_DRAFT - 2 : 0;
        if (window_ > 0 && ctx_.draft_window > 0) window_ = std::min(window_, static_cast<size_t>(ctx_.draft_window));
    }

    void begin(const std::vector<int64_t> &) override {
        draft_.reset();
        fed_.clear();
        start_ = 0;
    }

    void propose(const std::vector<int64_t> &full_context, int k, Proposal &out) override {
        out.clear();
        const std::vector<int64_t> &context = view(full_context, static_cast<size_t>(k));
        if (context.size() + static_cast<size_t>(k) >= draft_context_) return;  // the drafter's context is full
        // Bring the draft cache to `context`: keep the longest common prefix of what it holds and
        // the committed context (rejected proposals fall off here), feed the rest in one call.
        size_t keep = 0;
        while (keep < fed_.size() && keep < context.size() && fed_[keep] == context[keep]) ++keep;
        if (keep == context.size()) --keep;  // need the logits after the last token: re-feed it
        draft_.rollback(keep);
        fed_.resize(keep);
        const size_t feed = context.size() - keep;
        const auto t0 = std::chrono::steady_clock::now();
        const float *logits = draft_.forward(draft_ids(context.data() + keep, feed), feed, 1);
        // After a drafting round the cache lacks at most two tokens (the last drafted one, when all
        // were accepted, and the bonus); more is catch-up, charged pro rata.
        if (feed > 2) {
            const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
            out.catchup_ms = ms * static_cast<double>(feed - 2) / static_cast<double>(feed);
            out.prefill_ms = ms;
            out.prefill_tokens = feed;
        }
        fed_.insert(fed_.end(), context.begin() + keep, context.end());
        const size_t dv = draft_.vocab();
        for (int i = 0; i < k; ++i) {
            int64_t t = draft_token(logits, dv, id_map_, ctx_, i, out, probs_);
            if (t < 0 || i + 1 == k || !draft_more(ctx_, out)) break;
            logits = draft_.forward(draft_ids(&t, 1), 1, 1);
            fed_.push_back(t);
        }
    }

    void accept(size_t, const std::vector<int64_t> &) override {}
    int64_t compactions() const override { return draft_.compactions(); }
    void add_stats(es_stats &st) const override { st.draft_window_slides = slides_; }
    bool confident() const override { return true; }

private:
    // A windowed drafter reads the first kDraftSinkTokens of the context (attention sinks, as in
    // StreamingLLM) and the latest tokens: at most window_ in all, with k to draft. When a round
    // would overflow it, the recent part restarts at half the window, so the drafter re-reads
    // window_ / 2 tokens once per window_ / 2 committed ones, at positions right after the sinks;
    // its attention then costs what it costs at a short context, however long the prompt is.
    static constexpr size_t kMinWindow = ES_MIN_DRAFT_WINDOW;  // sinks + half a window + k always fit

    const std::vector<int64_t> &view(const std::vector<int64_t> &context, size_t k) {
        if (window_ == 0 || (start_ == 0 && context.size() + k <= window_)) return context;
        if (start_ == 0 || kDraftSinkTokens + (context.size() - start_) + k > window_) {
            start_ = std::max(kDraftSinkTokens, context.size() - std::min(context.size(), window_ / 2));
            ++slides_;
        }
        view_.assign(context.begin(), context.begin() + kDraftSinkTokens);
        view_.insert(view_.end(), context.begin() + static_cast<long>(start_), context.end());
        return view_;
    }

    // Target ids as the drafter reads them: unchanged, or through a trimmed drafter's input map.
    const int64_t *draft_ids(const int64_t *ids, size_t n) {
        if (input_map_.empty()) return ids;
        mapped_.resize(n);
        for (size_t i = 0; i < n; ++i) mapped_[i] = input_map_[static_cast<size_t>(ids[i])];
        return mapped_.data();
    }

    Model &draft_;
    const std::vector<int32_t> &id_map_;
    const std::vector<int32_t> &input_map_;
    std::vector<int64_t> mapped_;  // scratch for draft_ids
    size_t draft_context_;
    DraftContext ctx_;
    std::vector<int64_t> fed_;  // target ids in the draft cache, position by position
    std::vector<float> probs_;
    size_t window_ = 0;          // the most context tokens the drafter reads (0: all it can hold)
    size_t start_ = 0;           // windowed: where the recent part of the context starts (0: not sliding yet)
    int64_t slides_ = 0;         // times start_ moved (stats)
    std::vector<int64_t> view_;  // windowed: sinks + recent part
};

class NgramPolicy final : public Policy {
public:
    explicit NgramPolicy(int max_n) : max_n_(max_n) {}
    void begin(const std::vector<int64_t> &) override {}
    void propose(const std::vector<int64_t> &context, int k, Proposal &out) override {
        out.clear();
        prompt_lookup(context, 1, max_n_, static_cast<size_t>(k), out.tokens);
    }
    void accept(size_t, const std::vector<int64_t> &) override {}

private:
    int max_n_;
};

}  // namespace

int prompt_lookup(const std::vector<int64_t> &context, int min_n, int max_n, size_t k, std::vector<int64_t> &out) {
    out.clear();
    const size_t len = context.size();
    for (int n = max_n; n >= std::max(1, min_n); --n) {
        if (len < static_cast<size_t>(n) + 1) continue;
        const int64_t *suffix = context.data() + len - n;
        // Latest earlier occurrence (ending before the suffix itself) wins: recent context
        // predicts best.
        for (size_t start = len - n; start-- > 0;) {
            if (!std::equal(suffix, suffix + n, context.data() + start)) continue;
            const size_t from = start + static_cast<size_t>(n);
            const size_t count = std::min(k, len - from);
            out.assign(context.begin() + static_cast<long>(from), context.begin() + static_cast<long>(from + count));
            return n;
        }
    }
    return 0;
}

int64_t draft_token(const float *logits, size_t dv, const std::vector<int32_t> &id_map, const DraftContext &ctx, int i, Proposal &out,
                    std::vector<float> &probs) {
    const size_t tv = ctx.target_vocab;
    const bool confident = ctx.length && ctx.length->uses_confidence();
    const float top1 = confident || ctx.stop_prob > 0.f ? top1_prob(logits, dv) : 1.f;
    if (ctx.stop_prob > 0.f && i > 0 && top1 < ctx.stop_prob) return -1;
    int64_t d;
    if (ctx.sampling.greedy()) {
        d = argmax(logits, dv);
        if (confident) out.conf.push_back(top1);
    } else {
        sampling_probs(logits, dv, ctx.sampling, probs);
        d = sample(probs.data(), dv, *ctx.rng);
        if (confident) out.conf.push_back(probs[static_cast<size_t>(d)]);
        // q in the target vocabulary: identical row, or scattered through the id map.
        size_t base = out.q.size();
        out.q.resize(base + tv, 0.f);
        if (id_map.empty()) {
            std::copy(probs.begin(), probs.begin() + static_cast<long>(std::min(dv, tv)), out.q.begin() + static_cast<long>(base));
        } else {
            for (size_t j = 0; j < dv; ++j) out.q[base + static_cast<size_t>(id_map[j])] = probs[j];
        }
    }
    const int64_t t = id_map.empty() ? d : id_map[static_cast<size_t>(d)];
    out.tokens.push_back(t);
    return t;
}

bool draft_more(const DraftContext &ctx, const Proposal &out) {
    return !(ctx.length && ctx.length->uses_confidence()) || ctx.length->more(out.conf);
}

std::unique_ptr<Policy> make_null_policy() { return std::make_unique<NullPolicy>(); }

std::unique_ptr<Policy> make_draft_model_policy(Model &draft, const std::vector<int32_t> &id_map, const std::vector<int32_t> &input_map,
                                                size_t draft_context, const DraftContext &ctx) {
    return std::make_unique<DraftModelPolicy>(draft, id_map, input_map, draft_context, ctx);
}

std::unique_ptr<Policy> make_ngram_policy(int max_n) { return std::make_unique<NgramPolicy>(max_n); }

}  // namespace es
