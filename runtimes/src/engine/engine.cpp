// The decode loop: one function, generate(), read top to bottom. Maths lives in sampling.cpp,
// drafting in policy.cpp, KV-cache handling in the model backends, text in text_stream.cpp.
#include "engine/engine.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "core/error.hpp"
#include "core/sampling.hpp"
#include "drafting/eagle3.hpp"
#include "drafting/policy.hpp"
#include "engine/accept.hpp"
#include "text/text_stream.hpp"

namespace es {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

// Adds the time of a scope to a counter.
struct Timed {
    double &acc;
    Clock::time_point t0 = Clock::now();
    explicit Timed(double &a) : acc(a) {}
    ~Timed() { acc += ms_since(t0); }
};

// The drafting policy of a generation: the loaded drafter (reading target ids, or across
// vocabularies), prompt lookup, or none.
std::unique_ptr<Policy> make_policy(Pipeline &p, es_policy kind, const DraftContext &dctx) {
    if (kind == ES_POLICY_NGRAM) return make_ngram_policy();
    if (kind != ES_POLICY_DRAFT) return make_null_policy();
    const size_t draft_context = static_cast<size_t>(p.draft_spec.context_length);
    if (p.xvocab) return make_cross_vocab_policy(*p.draft, *p.xvocab, draft_context, dctx);
    if (p.draft_spec.relation == "eagle3") return make_eagle3_policy(*p.target, *p.draft, p.eagle3_map, dctx);
    return make_draft_model_policy(*p.draft, p.trim_map, p.trim_input, draft_context, dctx);
}

// EDGESPEC_TRACE_ROUNDS=FILE appends one JSON line per round to FILE (a developer's aid: where
// each round's tokens came from, how many were found, verified and accepted, and what it cost).
// Unset, or a file that cannot be opened, traces nothing.
struct RoundTrace {
    std::unique_ptr<FILE, int (*)(FILE *)> f{nullptr, &std::fclose};
    RoundTrace() {
        if (const char *path = std::getenv("EDGESPEC_TRACE_ROUNDS"); path && *path) f.reset(std::fopen(path, "a"));
    }
    // src: lookup, draft or plain; looked_up: the tokens prompt lookup found (before the length
    // rule, kept or not); drafted: the drafter's tokens (before adaptive k's prefix choice); m:
    // the tokens verified, of which tail were looked up after the drafted ones.
    void round(const char *src, size_t looked_up, size_t drafted, size_t m, size_t tail, size_t acc, double draft_ms, double verify_ms) {
        if (f)
            std::fprintf(f.get(),
                         "{\"src\":\"%s\",\"looked_up\":%zu,\"drafted\":%zu,\"m\":%zu,\"tail\":%zu,\"acc\":%zu,\"draft_ms\":%.4f,"
                         "\"verify_ms\":%.4f}\n",
                         src, looked_up, drafted, m, tail, acc, draft_ms, verify_ms);
    }
};

}  // namespace

void validate_config(const Pipeline &p, const es_generation_config &c) {
    auto bad = [](const std::string &m) { return Error(ES_ERR_INVALID_ARGUMENT, m); };
    if (c.max_new_tokens < 1) throw bad("max_new_tokens must be at least 1 (got " + std::to_string(c.max_new_tokens) + ").");
    if (c.policy < ES_POLICY_AUTO || c.policy > ES_POLICY_NGRAM) throw bad("policy must be one of auto, autoregressive, draft, ngram.");
    if (c.k != -1 && (c.k < 1 || c.k > ES_MAX_DRAFT))
        throw bad("k must be -1 (adaptive) or between 1 and " + std::to_string(ES_MAX_DRAFT) + " (got " + std::to_string(c.k) + ").");
    if (c.k_max < 1 || c.k_max > ES_MAX_DRAFT)
        throw bad("k_max must be between 1 and " + std::to_string(ES_MAX_DRAFT) + " (got " + std::to_string(c.k_max) + ").");
    if (!(c.temperature >= 0.f) || std::isinf(c.temperature))
        throw bad("temperature must be 0 (greedy) or positive (got " + std::to_string(c.temperature) + ").");
    if (c.top_k < 0) throw bad("top_k must be 0 (off) or positive (got " + std::to_string(c.top_k) + ").");
    if (!(c.top_p > 0.f && c.top_p <= 1.f)) throw bad("top_p must be in (0, 1] (got " + std::to_string(c.top_p) + ").");
    if (!(c.draft_stop_prob >= 0.f && c.draft_stop_prob < 1.f)) throw bad("draft_stop_prob must be in [0, 1).");
    if (c.draft_window != 0 && c.draft_window < ES_MIN_DRAFT_WINDOW)
        throw bad("draft_window must be 0 (all the drafter's context holds) or at least " + std::to_string(ES_MIN_DRAFT_WINDOW) +
                  " tokens (got " + std::to_string(c.draft_window) + ").");
    if (c.lookup != 0 && c.lookup != 1) throw bad("lookup must be 0 (off) or 1 (on) (got " + std::to_string(c.lookup) + ").");
    if (c.n_stop > 0 && !c.stop) throw bad("stop is NULL but n_stop is " + std::to_string(c.n_stop) + ".");
    for (size_t i = 0; i < c.n_stop; ++i) {
        if (!c.stop[i] || !*c.stop[i]) throw bad("stop strings must be non-empty (stop[" + std::to_string(i) + "] is not).");
        const std::string_view stop(c.stop[i]);
        if (valid_utf8_prefix(stop) < stop.size()) throw bad("stop[" + std::to_string(i) + "] is not valid UTF-8; pass UTF-8 text.");
    }
    if (c.policy == ES_POLICY_DRAFT && !p.draft)
        throw bad(
            "policy draft needs a drafter, but this pipeline was loaded without one; load it with a draft or use policy "
            "ngram/autoregressive.");
}

GenerationOutput generate(Pipeline &p, const std::string &prompt, const es_generation_config &cfg, es_stream_callback callback,
                          void *user_data, const std::atomic<bool> *cancel) {
    const auto t_start = Clock::now();
    auto check_cancel = [&] {
        if (cancel && cancel->load(std::memory_order_relaxed)) throw_cancelled();
    };
    GenerationOutput out;
    es_stats &st = out.stats;
    Model &target = *p.target;
    const size_t vocab = target.vocab();
    const size_t context_length = static_cast<size_t>(p.bundle.target.context_length);
    const size_t max_new = static_cast<size_t>(cfg.max_new_tokens);
    SamplingParams sp{cfg.temperature, cfg.top_k, cfg.top_p};
    Rng rng(cfg.seed);
    std::vector<float> p_rows, residual;  // scratch: target distributions, residual

    std::vector<int64_t> prompt_ids;
    {
        Timed t(st.tokenize_ms);
        prompt_ids = p.tokenizer->encode(prompt);
    }
    // A tokenizer that does not belong to the model could emit ids past its embedding rows.
    for (int64_t id : prompt_ids)
        if (id < 0 || static_cast<size_t>(id) >= vocab)
            throw Error(ES_ERR_BUNDLE, "The target tokenizer produced id " + std::to_string(id) +
                                           ", outside the target model's vocabulary (" + std::to_string(vocab) +
                                           " ids): the tokenizer does not belong to this model; re-export the bundle.");
    check_cancel();
    if (prompt_ids.empty()) {
        if (p.bundle.target.bos < 0)
            throw Error(ES_ERR_INVALID_ARGUMENT, "The prompt is empty and the model has no BOS token to start from; pass some text.");
        prompt_ids.push_back(p.bundle.target.bos);
    }
    if (prompt_ids.size() >= context_length)
        throw Error(ES_ERR_CONTEXT, "The prompt has " + std::to_string(prompt_ids.size()) + " tokens but the target's context holds " +
                                        std::to_string(context_length) + "; shorten the prompt.");
    st.prompt_tokens = static_cast<int64_t>(prompt_ids.size());

    // The policy: the loop below never asks which one it is.
    es_policy policy_kind = cfg.policy == ES_POLICY_AUTO ? (p.draft ? ES_POLICY_DRAFT : ES_POLICY_AUTOREGRESSIVE) : cfg.policy;
    // Greedy output does not depend on the draft schedule, so adaptive k may weigh measured costs.
    // A sample does (the schedule decides which random numbers decide which token), and the same
    // seed must give the same output: sampling schedules from its own acceptance history only,
    // never from the clock or from what earlier generations taught the pipeline.
    DraftLengthController controller(policy_kind == ES_POLICY_AUTOREGRESSIVE ? 1 : cfg.k, cfg.k_max, sp.greedy() ? &p.costs : nullptr);
    DraftContext dctx{sp, &rng, vocab, cfg.draft_stop_prob, cfg.draft_window, &controller};
    std::unique_ptr<Policy> policy = make_policy(p, policy_kind, dctx);
    const bool drafting = policy_kind != ES_POLICY_AUTOREGRESSIVE;
    if (drafting && policy->confident()) controller.use_confidence();  // adaptive k only
    // Prompt lookup beside a drafter: a round whose context repeats earlier text proposes what
    // followed it there, for free, instead of calling the drafter (es_generation_config.lookup).
    const bool lookup = cfg.lookup && policy_kind == ES_POLICY_DRAFT;
    // EDGESPEC_LOOKUP_TAIL=0 (a developer's switch, for A/B runs): no lookup tails.
    const char *tail_env = std::getenv("EDGESPEC_LOOKUP_TAIL");
    const bool tails = lookup && !(tail_env && std::string(tail_env) == "0");
    int last_k = controller.k();

    std::vector<std::string> stops;
    for (size_t i = 0; i < cfg.n_stop; ++i) stops.emplace_back(cfg.stop[i]);
    TextStream text(*p.tokenizer, p.text_table.get(), prompt_ids, stops);
    std::vector<int64_t> context = prompt_ids;  // every committed id; the last one is not yet in the target cache
    bool done = false;
    es_finish_reason reason = ES_FINISH_MAX_TOKENS;

    // Hands a text delta to the callback; returns its answer (2 = cancel is thrown).
    auto stream = [&](const std::string &delta) -> int {
        check_cancel();
        if (!callback || delta.empty()) return 0;
        Timed t(st.callback_ms);
        int r = callback(delta.data(), delta.size(), user_data);
        if (r == 2) throw Error(ES_ERR_CANCELLED, "The generation was cancelled by the stream callback.");
        return r;
    };

    // Emit: commits ids (stopping at EOS / max tokens / context), streams the text delta.
    auto emit = [&](const std::vector<int64_t> &ids) {
        std::vector<int64_t> kept;
        for (int64_t id : ids) {
            if (!cfg.ignore_eos && std::find(p.bundle.target.eos.begin(), p.bundle.target.eos.end(), id) != p.bundle.target.eos.end()) {
                done = true;
                reason = ES_FINISH_EOS;
                break;
            }
            kept.push_back(id);
            if (out.tokens.size() + kept.size() >= max_new) {
                done = true;
                reason = ES_FINISH_MAX_TOKENS;
                break;
            }
            if (context.size() + kept.size() >= context_length) {
                done = true;
                reason = ES_FINISH_CONTEXT;
                break;
            }
        }
        out.tokens.insert(out.tokens.end(), kept.begin(), kept.end());
        context.insert(context.end(), kept.begin(), kept.end());
        std::string delta = text.push(kept);
        if (text.stopped()) {
            done = true;
            reason = ES_FINISH_STOP_STRING;
        }
        if (stream(delta) == 1 && !done) {
            done = true;
            reason = ES_FINISH_CALLBACK;
        }
    };

    // 0. prefill: the target reads the prompt and gives the first token.
    target.reset();
    {
        Timed t(st.verify_ms);
        const float *logits = target.forward(prompt_ids.data(), prompt_ids.size(), 1);
        st.prefill_ms = ms_since(t.t0);
        st.target_calls = 1;
        int64_t first = pick(logits, vocab, sp, rng, p_rows);
        st.ttft_ms = ms_since(t_start);
        emit({first});
    }
    policy->begin(prompt_ids);

    Proposal proposal;
    std::vector<int64_t> verify_ids, emitted, lookup_ctx, tail_ids;
    RoundTrace trace;
    while (!done) {
        check_cancel();
        // Draft no further than the tokens still wanted and the context still free.
        const size_t room = std::min(max_new - out.tokens.size(), context_length - context.size());
        const int k = drafting ? static_cast<int>(std::min<size_t>(static_cast<size_t>(controller.k()), room - 1)) : 0;

        // 1. propose: up to k tokens in target ids (+ the q they were drawn from), or what prompt
        //    lookup found (deterministic: q is one-hot), as many as pay.
        proposal.clear();
        double round_draft_ms = 0, round_verify_ms = 0;
        bool looked = false;
        size_t found = 0;
        if (lookup && room > 1) {
            Timed t(round_draft_ms);
            const size_t most = std::min<size_t>(static_cast<size_t>(cfg.k_max), room - 1);
            prompt_lookup(context, kLookupMinN, kLookupMaxN, most, proposal.tokens);
            found = proposal.tokens.size();
            proposal.tokens.resize(static_cast<size_t>(controller.lookup_length(static_cast<int>(proposal.tokens.size()))));
            looked = !proposal.tokens.empty();
            if (found && !looked) controller.refused_lookup();
        }
        if (k > 0 && !looked) {
            Timed t(round_draft_ms);
            policy->propose(context, k, proposal);
        }
        st.draft_ms += round_draft_ms;
        st.draft_prefill_ms += proposal.prefill_ms;
        st.draft_prefill_tokens += static_cast<int64_t>(proposal.prefill_tokens);
        if (controller.uses_confidence() && !looked) {
            // Verify the prefix of the drafted tokens that pays best (maybe none: a plain step).
            const size_t j = static_cast<size_t>(controller.select(proposal.conf));
            if (j < proposal.tokens.size()) {
                proposal.tokens.resize(j);
                if (!proposal.q.empty()) proposal.q.resize(j * vocab);
            }
        }
        // A lookup tail: where the context and the drafted tokens end with text that occurred
        // before, what followed it there is verified after them in the same call, as far as it
        // pays (greedy: q is one-hot only there). A whole chain that runs into repeated text then
        // yields that text this round instead of in a lookup round of its own.
        size_t tail = 0;
        const size_t drafted_m = proposal.tokens.size();
        if (tails && !looked && drafted_m > 0 && proposal.q.empty()) {
            const size_t most = std::min<size_t>(static_cast<size_t>(cfg.k_max), room - 1);
            if (most > drafted_m) {
                lookup_ctx.assign(context.begin(), context.end());
                lookup_ctx.insert(lookup_ctx.end(), proposal.tokens.begin(), proposal.tokens.end());
                prompt_lookup(lookup_ctx, kLookupMinN, kLookupMaxN, most - drafted_m, tail_ids);
                tail = static_cast<size_t>(controller.lookup_tail(static_cast<int>(drafted_m),
                                                                  controller.chain_acceptance(static_cast<int>(drafted_m), proposal.conf),
                                                                  static_cast<int>(tail_ids.size())));
                proposal.tokens.insert(proposal.tokens.end(), tail_ids.begin(), tail_ids.begin() + static_cast<long>(tail));
            }
        }
        const size_t m = proposal.tokens.size();
        last_k = static_cast<int>(drafted_m);
        st.drafted += static_cast<int64_t>(m);

        // 2. verify: one target call over [last committed token, proposals] -> m + 1 rows.
        verify_ids.assign(1, context.back());
        verify_ids.insert(verify_ids.end(), proposal.tokens.begin(), proposal.tokens.end());
        const size_t n_past = target.n_past();  // == context.size() - 1
        const float *rows;
        {
            Timed t(round_verify_ms);
            rows = target.forward(verify_ids.data(), m + 1, m + 1);
        }
        st.verify_ms += round_verify_ms;
        ++st.target_calls;

        // 3. accept: greedy = longest prefix matching the target's argmax; sampling = accept
        //    d_i with probability min(1, p_i(d_i) / q_i(d_i)), else draw from norm(max(0, p_i - q_i)).
        const Verdict verdict = accept_drafts(rows, vocab, proposal.tokens.data(), m, proposal.q.empty() ? nullptr : proposal.q.data(), sp,
                                              rng, p_rows, residual);
        const size_t n_acc = verdict.accepted;
        const int64_t bonus = verdict.bonus;
        st.accepted += static_cast<int64_t>(n_acc);
        ++st.accepted_hist[n_acc];
        if (looked) {
            controller.update_lookup(static_cast<int>(m), static_cast<int>(n_acc), round_verify_ms);
            st.lookup_drafted += static_cast<int64_t>(m);
            st.lookup_accepted += static_cast<int64_t>(n_acc);
        } else {
            const size_t head_acc = std::min(n_acc, drafted_m), tail_acc = n_acc - head_acc;
            controller.update(static_cast<int>(drafted_m), static_cast<int>(head_acc), std::max(0.0, round_draft_ms - proposal.catchup_ms),
                              round_verify_ms, &proposal.conf, static_cast<int>(tail), static_cast<int>(tail_acc));
            st.lookup_drafted += static_cast<int64_t>(tail);
            st.lookup_accepted += static_cast<int64_t>(tail_acc);
        }

        trace.round(looked ? "lookup"
                    : m    ? "draft"
                           : "plain",
                    found, looked ? 0 : std::max(drafted_m, proposal.conf.size()), m, tail, n_acc, round_draft_ms, round_verify_ms);

        // 4. rollback: the target keeps the last token and the accepted proposals.
        target.rollback(n_past + 1 + n_acc);

        // 5. emit: accepted proposals + the bonus token; stop checks; stream; stats.
        emitted.assign(proposal.tokens.begin(), proposal.tokens.begin() + static_cast<long>(n_acc));
        emitted.push_back(bonus);
        if (looked || n_acc > drafted_m)  // the policy's own tokens end before what was accepted
            policy->observe(n_acc, emitted);
        else
            policy->accept(n_acc, emitted);
        emit(emitted);
    }

    stream(text.finish());  // text held back for a partial character or a possible stop string
    out.text = text.text();
    st.total_ms = ms_since(t_start);
    st.generated_tokens = static_cast<int64_t>(out.tokens.size());
    st.finish_reason = reason;
    st.final_k = !drafting ? 0 : controller.uses_confidence() ? last_k : controller.k();
    st.tpot_ms = st.generated_tokens > 1 ? (st.total_ms - st.ttft_ms) / static_cast<double>(st.generated_tokens - 1) : 0.0;
    st.tokens_per_s = st.total_ms > 0 ? static_cast<double>(st.generated_tokens) * 1000.0 / st.total_ms : 0.0;
    st.other_ms = std::max(0.0, st.total_ms - st.verify_ms - st.draft_ms - st.tokenize_ms - st.callback_ms);
    st.acceptance_rate = st.drafted ? static_cast<double>(st.accepted) / static_cast<double>(st.drafted) : 0.0;
    st.mean_accepted = st.target_calls ? static_cast<double>(st.generated_tokens) / static_cast<double>(st.target_calls) : 0.0;
    st.kv_compactions = target.compactions() + policy->compactions();
    policy->add_stats(st);
    return out;
}

}  // namespace es
