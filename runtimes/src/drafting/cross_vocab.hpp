// Cross-vocabulary drafting (OmniDraft): a drafter with its own tokenizer and vocabulary drafts
// text, and the text is re-expressed as target ids. The two vocabularies meet at bytes: the
// bundle's token_bytes.bin holds the byte string of every token of each model (written at export
// from the HF tokenizer, export/token_bytes.py), and each model's openvino-tokenizers IR turns
// text back into its own ids.
//
// One round of the policy's propose(context, k):
//   1. sync       the committed target ids become text. Draft tokens whose bytes are still a
//                 prefix of it stay in the drafter's KV cache, minus one (the last kept token may
//                 merge with the new text); the rest of the text is tokenized with the drafter's
//                 tokenizer and fed, so the drafter's context ends where the committed text ends.
//                 An unfinished UTF-8 character at the very end waits: the draft must spell it.
//   2. draft      greedily, in draft ids, until the drafted text gives k + 1 target tokens (at
//                 most 2k + 2 steps), or up to a special token.
//   3. translate  the drafted text, cut before an unfinished UTF-8 character, is tokenized with
//                 the target tokenizer; the last target token is dropped (it may merge with text
//                 that follows) unless the drafter ended the text with EOS. Text the tokenizer
//                 cannot spell byte for byte ends the proposal: drafting stops rather than guesses.
//   4. cache      both tokenizations are memoized (text -> ids, bounded), so a draft seen before
//                 costs no tokenizer call.
// The drafter drafts greedily and the proposal carries no q (one-hot at the proposed ids), which
// keeps speculative sampling exactly lossless at any temperature. (A product of draft-token
// probabilities is not a distribution over target tokens, so it cannot serve as q.)
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "backends/model.hpp"
#include "core/bundle.hpp"
#include "drafting/fragment_cache.hpp"
#include "drafting/policy.hpp"
#include "text/token_table.hpp"
#include "text/tokenizer.hpp"

namespace es {

// What the generations of one pipeline share for a cross_vocab drafter: its tokenizer, both byte
// tables and the translation caches (valid across generations: they depend on text only).
//
// The translation caches persist in cache_dir (one file per drafter/target pair, keyed by a hash
// of both models' tokenizer files and byte tables): loaded here, saved atomically when the
// pipeline is freed and after a generation that added many entries. A file that is missing,
// corrupt, of another format version or for other tokenizers is ignored (a fresh cache; a
// corrupt one sets cache_warning), never an error.
struct CrossVocab {
    // target_tok: the pipeline's target tokenizer (must outlive this). cache_dir: "" = no file.
    CrossVocab(ov::Core &core, const ModelSpec &draft, const ModelSpec &target, Tokenizer &target_tok, size_t target_vocab,
               const std::string &cache_dir = "");
    ~CrossVocab();
    CrossVocab(const CrossVocab &) = delete;
    CrossVocab &operator=(const CrossVocab &) = delete;

    // Writes the cache file when entries were added since the last save (no-op without a file;
    // an I/O failure is ignored: the cache is an optimisation). after_generation: only when
    // kSaveEvery entries or more were added.
    void save(bool after_generation = false);

    Tokenizer draft_tok;
    TokenTable draft, target;
    FragmentCache to_draft, to_target;  // committed text -> draft ids; drafted text -> target ids
    std::vector<int64_t> draft_eos, target_eos;
    size_t target_vocab;
    std::string cache_file;     // "" = not persisted
    uint64_t cache_key = 0;     // hash of both tokenizers and byte tables (in the file name and header)
    std::string cache_warning;  // why a cache file was not loaded (corrupt), else ""
    size_t cache_loaded = 0;    // entries read from the file at load

    static constexpr size_t kSaveEvery = 512;
};

// The user's cache directory for translation caches: $EDGESPEC_CACHE, else $XDG_CACHE_HOME/edgespec,
// else $HOME/.cache/edgespec; then /translation. "" when none of them is set.
std::string default_translation_cache_dir();

// The policy over a cross_vocab drafter (see the top of this file); draft_context: the
// drafter's context length.
std::unique_ptr<Policy> make_cross_vocab_policy(Model &draft, CrossVocab &xv, size_t draft_context, const DraftContext &ctx);

}  // namespace es
