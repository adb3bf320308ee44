#include "drafting/eagle3.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "core/error.hpp"

namespace es {

namespace {

class Eagle3Policy final : public Policy {
public:
    Eagle3Policy(Model &target, Model &head, const std::vector<int32_t> &id_map, const DraftContext &ctx)
        : target_(target), head_(head), id_map_(id_map), ctx_(ctx), width_(target.feature_width()) {}

    void begin(const std::vector<int64_t> &prompt) override {
        head_.reset();
        real_ = 0;
        pending_.clear();
        // A prompt longer than draft_window: the head reads only its latest draft_window positions
        // (its attention reaches back little, and reading the prompt costs it a call over every row).
        // Generated positions are all read; the head's own positions start at the first one read.
        const size_t window = static_cast<size_t>(std::max(0, ctx_.draft_window));
        skipped_ = window > 0 && prompt.size() > window ? prompt.size() - window : 0;
        take(prompt.size(), skipped_);  // the prefill's rows
        routine_ = 0;
    }

    void propose(const std::vector<int64_t> &context, int k, Proposal &out) override {
        out.clear();
        // Feed the pairs (target features at p, token p + 1) the head has not read: after them its
        // last row predicts the token after context.back().
        const size_t rows = pending_.size() / width_;
        if (rows == 0 || skipped_ + real_ + rows + 1 != context.size())
            throw Error(ES_ERR_INTERNAL, "EAGLE-3 bookkeeping: the head holds " + std::to_string(real_) + " positions after " +
                                             std::to_string(skipped_) + " skipped and " + std::to_string(rows) +
                                             " pending for a context of " + std::to_string(context.size()) + ".");
        head_.rollback(real_);  // last round's drafted positions
        tokens_.assign(context.begin() + static_cast<long>(skipped_ + real_ + 1), context.end());
        const auto t0 = std::chrono::steady_clock::now();
        head_.set_features(pending_.data(), width_);
        const float *logits = head_.forward(tokens_.data(), rows, 1);
        if (rows > routine_) {  // more than the last target call's rows: the prompt, rounds without drafting
            const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
            out.catchup_ms = ms * static_cast<double>(rows - routine_) / static_cast<double>(rows);
            out.prefill_ms = ms;
            out.prefill_tokens = rows;
        }
        real_ += rows;
        pending_.clear();
        hidden_.assign(head_.features() + (rows - 1) * width_, head_.features() + rows * width_);
        const size_t dv = head_.vocab();
        for (int i = 0; i < k; ++i) {
            int64_t t = draft_token(logits, dv, id_map_, ctx_, i, out, probs_);
            if (t < 0 || i + 1 == k || !draft_more(ctx_, out)) break;
            // The next draft reads the head's own hidden state with the token it just drafted.
            head_.set_features(hidden_.data(), width_);
            logits = head_.forward(&t, 1, 1);
            hidden_.assign(head_.features(), head_.features() + width_);
        }
    }

    // The target's last call read [last committed token, proposals]: its first n_accepted + 1
    // rows are the features of positions now committed.
    void accept(size_t n_accepted, const std::vector<int64_t> &) override {
        take(n_accepted + 1);
        routine_ = n_accepted + 1;
    }

    // A lookup round's rows are committed positions like a drafted round's.
    void observe(size_t n_accepted, const std::vector<int64_t> &emitted) override { accept(n_accepted, emitted); }
    int64_t compactions() const override { return head_.compactions(); }
    bool confident() const override { return true; }

private:
    // Rows [from, rows) of the target's last call.
    void take(size_t rows, size_t from = 0) {
        const float *f = target_.features();
        if (!f) throw Error(ES_ERR_INTERNAL, "The target gave no EAGLE-3 features.");
        pending_.insert(pending_.end(), f + from * width_, f + rows * width_);
    }

    Model &target_;
    Model &head_;
    const std::vector<int32_t> &id_map_;
    DraftContext ctx_;
    size_t width_;
    size_t skipped_ = 0;          // prompt positions the head does not read (beyond draft_window)
    size_t real_ = 0;             // head positions holding real pairs (target features, committed token)
    size_t routine_ = 0;          // rows of the target's last verify call: a round's own catch-up
    std::vector<float> pending_;  // target feature rows of positions real_ .. (not yet read by the head)
    std::vector<float> hidden_;   // the head's hidden state at its last drafted position
    std::vector<int64_t> tokens_;
    std::vector<float> probs_;
};

}  // namespace

std::vector<int32_t> read_eagle3_map(const ModelSpec &spec, size_t target_vocab) {
    const std::string bytes = read_file(spec.id_map_file);
    if (bytes.empty() || bytes.size() % 8 != 0 || bytes.size() / 8 != static_cast<size_t>(spec.draft_vocab_size))
        throw Error(ES_ERR_BUNDLE, spec.id_map_file + " is not " + std::to_string(spec.draft_vocab_size) +
                                       " int64 target ids (the head's draft vocabulary); re-export the bundle.");
    std::vector<int32_t> map(bytes.size() / 8);
    for (size_t i = 0; i < map.size(); ++i) {
        int64_t id;
        std::memcpy(&id, bytes.data() + 8 * i, 8);  // little-endian hosts (x86, ARM)
        if (id < 0 || static_cast<size_t>(id) >= target_vocab)
            throw Error(ES_ERR_BUNDLE,
                        spec.id_map_file + " maps to id " + std::to_string(id) + ", outside the target vocabulary; re-export the bundle.");
        map[i] = static_cast<int32_t>(id);
    }
    return map;
}

std::unique_ptr<Policy> make_eagle3_policy(Model &target, Model &head, const std::vector<int32_t> &id_map, const DraftContext &ctx) {
    return std::make_unique<Eagle3Policy>(target, head, id_map, ctx);
}

}  // namespace es
