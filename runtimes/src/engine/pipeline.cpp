// Loading a pipeline: the bundle's target, one drafter and what drafting with it needs.
#include "engine/pipeline.hpp"

#include <chrono>
#include <cstdlib>
#include <cstring>

#include "backends/openvino/eagle3_graph.hpp"
#include "backends/openvino/openvino.hpp"
#include "core/error.hpp"
#include "drafting/eagle3.hpp"
#include "text/text_stream.hpp"

namespace es {

namespace {

std::vector<int32_t> read_id_map(const ModelSpec &spec, size_t target_vocab) {
    std::string bytes = read_file(spec.id_map_file);
    if (bytes.size() % 4 != 0 || bytes.empty())
        throw Error(ES_ERR_BUNDLE, spec.id_map_file + " is not a list of int32 ids; re-export the bundle.");
    std::vector<int32_t> map(bytes.size() / 4);
    std::memcpy(map.data(), bytes.data(), bytes.size());  // little-endian hosts (x86, ARM)
    for (int32_t id : map)
        if (id < 0 || static_cast<size_t>(id) >= target_vocab)
            throw Error(ES_ERR_BUNDLE,
                        spec.id_map_file + " maps to id " + std::to_string(id) + ", outside the target vocabulary; re-export the bundle.");
    return map;
}

// Runs a load step that reads file with OpenVINO: OpenVINO's own exceptions (a corrupt or foreign
// file) become one sentence naming the file; es::Error (already a sentence) passes through.
template <class F>
auto reading(const std::string &file, F &&f) -> decltype(f()) {
    try {
        return f();
    } catch (const Error &) {
        throw;
    } catch (const std::bad_alloc &) {
        throw Error(ES_ERR_BUNDLE, "Loading " + file + " ran out of memory (a corrupt size in the file?); re-export the bundle.");
    } catch (const std::exception &e) {
        throw Error(ES_ERR_BUNDLE,
                    "OpenVINO could not load " + file + " (" + ov_reason(e.what()) + "); the file may be corrupt: re-export the bundle.");
    }
}

}  // namespace

std::unique_ptr<Pipeline> load_pipeline(const std::string &bundle_dir, const PipelineOptions &o) {
    auto p = std::make_unique<Pipeline>();
    p->bundle = read_bundle(bundle_dir);
    check_device_options(o.target);  // before any slow work
    check_device_options(o.draft);
    ov::Core &core = openvino_core();
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
            throw Error(ES_ERR_BUNDLE,
                        "Drafter '" + draft->name +
                            "' has another vocabulary (cross_vocab), but the bundle has no token byte tables (token_bytes.bin) for " +
                            (draft->token_bytes_file.empty() ? "it" : "the target") +
                            ", which drafting across vocabularies needs; re-export the bundle with this edgespec.");
    }
    // Before OpenVINO reads anything: the tokenizer extension trusts the offsets in its .bin, so a
    // flipped byte there would crash the host instead of failing the load.
    const auto t_verify = std::chrono::steady_clock::now();
    verify_bundle(p->bundle, {&p->bundle.target, draft}, o.verify);
    p->integrity_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_verify).count();
    add_tokenizers_extension(core, o.tokenizers_extension);
    p->tokenizer = reading(p->bundle.target.tokenizer_file, [&] {
        return std::make_unique<Tokenizer>(core, p->bundle.target.tokenizer_file, p->bundle.target.detokenizer_file);
    });
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
    const bool eagle3 = draft && draft->relation == "eagle3";
    if (eagle3) {
        // The head's fc moves into the target, which gains the features output (drafting/eagle3.hpp);
        // the head runs on the stateful backend (a small graph with an input paged attention lacks).
        if (p->bundle.target.format != "openvino" || draft->format != "openvino")
            throw Error(ES_ERR_BUNDLE, "EAGLE-3 head '" + draft->name +
                                           "' needs an OpenVINO IR target and head; re-export the bundle with --format openvino.");
        target_options.transform = eagle3_target_transform(draft->target_layers, read_eagle3_fc(core, *draft), p->bundle.target.model_file);
        draft_options.transform = eagle3_head_transform(draft->model_file);
        draft_options.backend = "openvino-stateful";
    }
    p->target = reading(p->bundle.target.model_file, [&] { return load_model(p->bundle.target, target_options); });
    const int64_t target_vocab = static_cast<int64_t>(p->target->vocab());
    if (p->bundle.target.bos >= target_vocab)
        throw Error(ES_ERR_BUNDLE, "The manifest's BOS id " + std::to_string(p->bundle.target.bos) +
                                       " is outside the target's vocabulary (" + std::to_string(target_vocab) +
                                       " ids); re-export the bundle.");
    if (eagle3 && p->target->feature_width() == 0)
        throw Error(ES_ERR_INVALID_ARGUMENT, "EAGLE-3 head '" + draft->name +
                                                 "' needs the target on an OpenVINO backend (openvino, openvino-paged or "
                                                 "openvino-stateful); choose one of those or pass draft \"none\".");
    if (draft) {
        p->draft_spec = *draft;
        p->draft = reading(draft->model_file, [&] { return load_model(*draft, draft_options); });
        if (eagle3) {
            p->eagle3_map = read_eagle3_map(*draft, p->target->vocab());
            if (p->eagle3_map.size() != p->draft->vocab() || p->draft->feature_width() != p->target->feature_width())
                throw Error(ES_ERR_BUNDLE, "EAGLE-3 head '" + draft->name + "' does not fit the target (draft vocabulary " +
                                               std::to_string(p->draft->vocab()) + " for a map of " + std::to_string(p->eagle3_map.size()) +
                                               ", hidden size " + std::to_string(p->draft->feature_width()) + " for " +
                                               std::to_string(p->target->feature_width()) + "); re-export the bundle.");
        } else if (draft->relation == "cross_vocab") {
            p->xvocab = reading(draft->tokenizer_file, [&] {
                return std::make_unique<CrossVocab>(core, *draft, p->bundle.target, *p->tokenizer, p->target->vocab(),
                                                    o.translation_cache_dir);
            });
        } else if (draft->relation == "trimmed") {
            p->trim_map = read_id_map(*draft, p->target->vocab());
            if (p->trim_map.size() != p->draft->vocab())
                throw Error(ES_ERR_BUNDLE, draft->id_map_file + " has " + std::to_string(p->trim_map.size()) +
                                               " entries but the drafter has " + std::to_string(p->draft->vocab()) +
                                               " logits; re-export the bundle.");
            // A trimmed drafter's embeddings have the kept rows only: it reads trimmed ids too.
            // Target ids the trim dropped read as the manifest's fallback (the drafter's <unk>).
            if (draft->input_fallback < 0 || static_cast<size_t>(draft->input_fallback) >= p->trim_map.size())
                throw Error(ES_ERR_BUNDLE,
                            "Drafter '" + draft->name + "' has an input_fallback outside its vocabulary; re-export the bundle.");
            p->trim_input.assign(p->target->vocab(), static_cast<int32_t>(draft->input_fallback));
            for (size_t i = 0; i < p->trim_map.size(); ++i) p->trim_input[static_cast<size_t>(p->trim_map[i])] = static_cast<int32_t>(i);
        } else if (p->draft->vocab() > p->target->vocab()) {
            throw Error(ES_ERR_BUNDLE, "Drafter '" + draft->name +
                                           "' has a larger vocabulary than the target but is marked same_vocab; re-export the bundle.");
        } else if (p->draft->vocab() < p->target->vocab()) {
            // Target ids past the drafter's embedding rows (a padded target head) must never reach
            // it: they read as id 0. Its proposals are verified, so the output does not change.
            p->trim_input.assign(p->target->vocab(), 0);
            for (size_t i = 0; i < p->draft->vocab(); ++i) p->trim_input[i] = static_cast<int32_t>(i);
        }
    }
    if (!o.adapt_log_dir.empty()) p->adapt_log = std::make_unique<AdaptLog>(o.adapt_log_dir);
    return p;
}

}  // namespace es
