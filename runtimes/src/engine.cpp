// The decode loop: one function, generate(), read top to bottom. Maths lives in sampling.cpp,
// drafting in policy.cpp, KV-cache handling in the model backends, text in text_stream.cpp.
#include "engine.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "eagle3.hpp"
#include "error.hpp"
#include "policy.hpp"
#include "sampling.hpp"
#include "text_stream.hpp"

namespace es {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

// kSplitMaxWidth, or $EDGESPEC_PAGED_SPLIT_MAX (diagnostics for A/B runs; 0 turns the layout off).
size_t split_max_from_env() {
    const char *env = std::getenv("EDGESPEC_PAGED_SPLIT_MAX");
    if (!env) return kSplitMaxWidth;
    char *end = nullptr;
    const unsigned long v = std::strtoul(env, &end, 10);
    if (end == env || *end != '\0' || v > 64)
        throw Error(ES_ERR_INVALID_ARGUMENT, std::string("EDGESPEC_PAGED_SPLIT_MAX must be a whole number from 0 to 64 ") +
                                                 "(0 sends every call as one sequence); got '" + env + "'. Unset it for the default.");
    return static_cast<size_t>(v);
}

// Adds the time of a scope to a counter.
struct Timed {
    double &acc;
    Clock::time_point t0 = Clock::now();
    explicit Timed(double &a) : acc(a) {}
    ~Timed() { acc += ms_since(t0); }
};

ov::Core &shared_core() {
    static ov::Core core;  // one per process: plugins and the tokenizers extension load once
    return core;
}

std::vector<int32_t> read_id_map(const ModelSpec &spec, size_t target_vocab) {
    std::string bytes = read_file(spec.id_map_file);
    if (bytes.size() % 4 != 0 || bytes.empty())
        throw Error(ES_ERR_BUNDLE, spec.id_map_file + " is not a list of int32 ids; re-export the bundle.");
    std::vector<int32_t> map(bytes.size() / 4);
    std::memcpy(map.data(), bytes.data(), bytes.size());  // little-endian hosts (x86, ARM)
    for (int32_t id : map)
        if (id < 0 || static_cast<size_t>(id) >= target_vocab)
            throw Error(ES_ERR_BUNDLE, spec.id_map_file + " maps to id " + std::to_string(id) +
                                           ", outside the target vocabulary; re-export the bundle.");
    return map;
}

// Picks the next token from one logits row (greedy or sampled from the target distribution).
int64_t pick(const float *logits, size_t vocab, const SamplingParams &sp, Rng &rng, std::vector<float> &scratch) {
    if (sp.greedy()) return argmax(logits, vocab);
    sampling_probs(logits, vocab, sp, scratch);
    return sample(scratch.data(), vocab, rng);
}

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

}  // namespace

std::unique_ptr<Pipeline> load_pipeline(const std::string &bundle_dir, const PipelineOptions &o) {
    auto p = std::make_unique<Pipeline>();
    p->bundle = read_bundle(bundle_dir);
    ov::Core &core = shared_core();
    check_device(core, o.target.device);
    check_device(core, o.draft.device);
    compile_properties(o.target);  // validates precision names before any slow work
    const ModelSpec *draft = nullptr;
    // A cross_vocab drafter compares text byte for byte: it needs the byte tables of both models.
    auto tables = [&](const ModelSpec &d) { return !d.token_bytes_file.empty() && !p->bundle.target.token_bytes_file.empty(); };
    if (o.draft_name.empty()) {
        // Default: a drafter that reads target ids (cheaper, no translation), else a cross_vocab one.
        for (const auto &d : p->bundle.drafts)
            if (!draft && d.relation != "cross_vocab") draft = &d;
        for (const auto &d : p->bundle.drafts)
            if (!draft && d.relation == "cross_vocab" && tables(d)) draft = &d;
    } else if (o.draft_name != "none") {
        for (const auto &d : p->bundle.drafts)
            if (!draft && d.name == o.draft_name) draft = &d;
        if (!draft) {
            std::string known;
            for (const auto &d : p->bundle.drafts) known += (known.empty() ? "" : ", ") + d.name;
            throw Error(ES_ERR_INVALID_ARGUMENT, "The bundle has no drafter named '" + o.draft_name + "' (it has: " +
                                                     (known.empty() ? "none" : known) + "); pass one of those or \"none\".");
        }
        if (draft->relation == "cross_vocab" && !tables(*draft))
            throw Error(ES_ERR_BUNDLE, "Drafter '" + draft->name + "' has another vocabulary (cross_vocab), but the bundle has no token byte tables (token_bytes.bin) for " +
                                           (draft->token_bytes_file.empty() ? "it" : "the target") +
                                           ", which drafting across vocabularies needs; re-export the bundle with this edgespec.");
    }
    add_tokenizers_extension(core, o.tokenizers_extension);
    p->tokenizer = std::make_unique<Tokenizer>(core, p->bundle.target.tokenizer_file, p->bundle.target.detokenizer_file);
    if (!p->bundle.target.token_bytes_file.empty()) {
        // Streamed text is spelled from the target's byte table where that gives the detokenizer's text.
        try {
            auto table = std::make_unique<TokenTable>(p->bundle.target.token_bytes_file, *p->tokenizer, "the target");
            if (TextStream::table_matches(*p->tokenizer, *table)) p->text_table = std::move(table);
        } catch (const Error &) {
            // Without it streaming runs the detokenizer; a cross_vocab drafter that needs the table reports the problem.
        }
    }
    // Fixed-width copies for the widths the loop calls most: the target's decode step and its
    // verify calls of up to kFixedVerifyWidths tokens (k <= 4, the k adaptive rounds mostly pick),
    // the drafter's drafting step and its 2-token catch-up after a fully accepted round.
    DeviceOptions target_options = o.target, draft_options = o.draft;
    for (size_t w = 1; w <= kFixedVerifyWidths; ++w) target_options.fixed_widths.push_back(w);
    draft_options.fixed_widths = {1, 2};
    target_options.split_max = draft_options.split_max = split_max_from_env();
    const bool eagle3 = draft && draft->relation == "eagle3";
    if (eagle3) {
        // The head's fc moves into the target, which gains the features output (eagle3.hpp); the
        // head runs on the stateful backend (a small graph with an input paged attention lacks).
        if (p->bundle.target.format != "openvino" || draft->format != "openvino")
            throw Error(ES_ERR_BUNDLE, "EAGLE-3 head '" + draft->name + "' needs an OpenVINO IR target and head; re-export the bundle with --format openvino.");
        target_options.transform = eagle3_target_transform(draft->target_layers, read_eagle3_fc(core, *draft), p->bundle.target.model_file);
        draft_options.transform = eagle3_head_transform(draft->model_file);
        draft_options.backend = "openvino-stateful";
    }
    p->target = load_model(core, p->bundle.target, target_options);
    if (eagle3 && p->target->feature_width() == 0)
        throw Error(ES_ERR_INVALID_ARGUMENT, "EAGLE-3 head '" + draft->name + "' needs the target on an OpenVINO backend (openvino, openvino-paged or openvino-stateful); choose one of those or pass draft \"none\".");
    if (draft) {
        p->draft_spec = *draft;
        p->draft = load_model(core, *draft, draft_options);
        if (eagle3) {
            p->eagle3_map = read_eagle3_map(*draft, p->target->vocab());
            if (p->eagle3_map.size() != p->draft->vocab() || p->draft->feature_width() != p->target->feature_width())
                throw Error(ES_ERR_BUNDLE, "EAGLE-3 head '" + draft->name + "' does not fit the target (draft vocabulary " +
                                               std::to_string(p->draft->vocab()) + " for a map of " + std::to_string(p->eagle3_map.size()) +
                                               ", hidden size " + std::to_string(p->draft->feature_width()) + " for " +
                                               std::to_string(p->target->feature_width()) + "); re-export the bundle.");
        } else if (draft->relation == "cross_vocab") {
            p->xvocab = std::make_unique<CrossVocab>(core, *draft, p->bundle.target, *p->tokenizer, p->target->vocab());
        } else if (draft->relation == "trimmed") {
            p->trim_map = read_id_map(*draft, p->target->vocab());
            if (p->trim_map.size() != p->draft->vocab())
                throw Error(ES_ERR_BUNDLE, draft->id_map_file + " has " + std::to_string(p->trim_map.size()) +
                                               " entries but the drafter has " + std::to_string(p->draft->vocab()) +
                                               " logits; re-export the bundle.");
            // A trimmed drafter's embeddings have the kept rows only: it reads trimmed ids too.
            // Target ids the trim dropped read as the manifest's fallback (the drafter's <unk>).
            if (draft->input_fallback < 0 || static_cast<size_t>(draft->input_fallback) >= p->trim_map.size())
                throw Error(ES_ERR_BUNDLE, "Drafter '" + draft->name + "' has an input_fallback outside its vocabulary; re-export the bundle.");
            p->trim_input.assign(p->target->vocab(), static_cast<int32_t>(draft->input_fallback));
            for (size_t i = 0; i < p->trim_map.size(); ++i) p->trim_input[static_cast<size_t>(p->trim_map[i])] = static_cast<int32_t>(i);
        } else if (p->draft->vocab() > p->target->vocab()) {
            throw Error(ES_ERR_BUNDLE, "Drafter '" + draft->name + "' has a larger vocabulary than the target but is marked same_vocab; re-export the bundle.");
        }
    }
    return p;
}

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
    if (c.n_stop > 0 && !c.stop) throw bad("stop is NULL but n_stop is " + std::to_string(c.n_stop) + ".");
    for (size_t i = 0; i < c.n_stop; ++i)
        if (!c.stop[i] || !*c.stop[i]) throw bad("stop strings must be non-empty (stop[" + std::to_string(i) + "] is not).");
    if (c.policy == ES_POLICY_DRAFT && !p.draft)
        throw bad("policy draft needs a drafter, but this pipeline was loaded without one; load it with a draft or use policy ngram/autoregressive.");
}

GenerationOutput generate(Pipeline &p, const std::string &prompt, const es_generation_config &cfg,
                          es_stream_callback callback, void *user_data) {
    const auto t_start = Clock::now();
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
    if (prompt_ids.empty()) {
        if (p.bundle.target.bos < 0) throw Error(ES_ERR_INVALID_ARGUMENT, "The prompt is empty and the model has no BOS token to start from; pass some text.");
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
    DraftLengthController controller(policy_kind == ES_POLICY_AUTOREGRESSIVE ? 1 : cfg.k, cfg.k_max,
                                     sp.greedy() ? &p.costs : nullptr);
    DraftContext dctx{sp, &rng, vocab, cfg.draft_stop_prob, cfg.draft_window, &controller};
    std::unique_ptr<Policy> policy = make_policy(p, policy_kind, dctx);
    const bool drafting = policy_kind != ES_POLICY_AUTOREGRESSIVE;
    if (drafting && policy->confident()) controller.use_confidence();  // adaptive k only
    int last_k = controller.k();

    std::vector<std::string> stops;
    for (size_t i = 0; i < cfg.n_stop; ++i) stops.emplace_back(cfg.stop[i]);
    TextStream text(*p.tokenizer, p.text_table.get(), prompt_ids, stops);
    std::vector<int64_t> context = prompt_ids;  // every committed id; the last one is not yet in the target cache
    bool done = false;
    es_finish_reason reason = ES_FINISH_MAX_TOKENS;

    // Hands a text delta to the callback; returns its answer (2 = cancel is thrown).
    auto stream = [&](const std::string &delta) -> int {
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
    std::vector<int64_t> verify_ids, emitted;
    while (!done) {
        // Draft no further than the tokens still wanted and the context still free.
        const size_t room = std::min(max_new - out.tokens.size(), context_length - context.size());
        const int k = drafting ? static_cast<int>(std::min<size_t>(static_cast<size_t>(controller.k()), room - 1)) : 0;

        // 1. propose: up to k tokens in target ids (+ the q they were drawn from).
        proposal.clear();
        double round_draft_ms = 0, round_verify_ms = 0;
        if (k > 0) {
            Timed t(round_draft_ms);
            policy->propose(context, k, proposal);
        }
        st.draft_ms += round_draft_ms;
        st.draft_prefill_ms += proposal.prefill_ms;
        st.draft_prefill_tokens += static_cast<int64_t>(proposal.prefill_tokens);
        if (controller.uses_confidence()) {
            // Verify the prefix of the drafted tokens that pays best (maybe none: a plain step).
            const size_t j = static_cast<size_t>(controller.select(proposal.conf));
            if (j < proposal.tokens.size()) {
                proposal.tokens.resize(j);
                if (!proposal.q.empty()) proposal.q.resize(j * vocab);
            }
        }
        const size_t m = proposal.tokens.size();
        last_k = static_cast<int>(m);
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
        size_t n_acc = 0;
        int64_t bonus = -1;
        for (; n_acc < m; ++n_acc) {
            const float *row = rows + n_acc * vocab;
            const int64_t d = proposal.tokens[n_acc];
            if (sp.greedy()) {
                int64_t t = argmax(row, vocab);
                if (t != d) {
                    bonus = t;
                    break;
                }
                continue;
            }
            sampling_probs(row, vocab, sp, p_rows);
            const float *q = proposal.q.empty() ? nullptr : proposal.q.data() + n_acc * vocab;
            const float qd = q ? q[d] : 1.f;
            if (qd > 0.f && rng.uniform() < std::min(1.0, static_cast<double>(p_rows[static_cast<size_t>(d)]) / qd)) continue;
            bonus = residual_probs(p_rows.data(), q, d, vocab, residual) ? sample(residual.data(), vocab, rng)
                                                                          : sample(p_rows.data(), vocab, rng);
            break;
        }
        if (bonus < 0) bonus = pick(rows + m * vocab, vocab, sp, rng, p_rows);  // all accepted: the bonus row
        st.accepted += static_cast<int64_t>(n_acc);
        ++st.accepted_hist[n_acc];
        controller.update(static_cast<int>(m), static_cast<int>(n_acc), std::max(0.0, round_draft_ms - proposal.catchup_ms),
                          round_verify_ms, &proposal.conf);

        // 4. rollback: the target keeps the last token and the accepted proposals.
        target.rollback(n_past + 1 + n_acc);

        // 5. emit: accepted proposals + the bonus token; stop checks; stream; stats.
        emitted.assign(proposal.tokens.begin(), proposal.tokens.begin() + static_cast<long>(n_acc));
        emitted.push_back(bonus);
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
    return out;
}

}  // namespace es
