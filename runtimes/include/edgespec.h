/*
 * edgespec.h — the C ABI of the edgespec native runtime.
 *
 * Conventions (kept by every function in this header):
 *   - every symbol starts with `es_`; handles are opaque pointers;
 *   - a function that can fail returns es_status (ES_OK == 0) and, on failure, sets a
 *     thread-local message readable with es_last_error() until the next failing call;
 *   - the library never calls exit()/abort() and never lets a C++ exception cross this boundary;
 *   - strings returned as `const char *` are owned by the library (valid until the stated event);
 *   - every es_*_create / es_*_load has a matching es_*_free that accepts NULL;
 *   - handles are checked against the library's live handles: NULL, a freed handle or a stray
 *     pointer passed where a handle is expected gets ES_ERR_INVALID_ARGUMENT (or the documented
 *     neutral answer of a getter), not a crash.
 *
 * Threading: a pipeline runs one call at a time (es_generate, es_tokenize, es_detokenize). A
 * second such call while one runs -- from another thread, or from inside the first one's stream
 * callback -- returns ES_ERR_BUSY with a sentence and changes nothing; so does es_pipeline_free.
 * es_cancel, the getters (es_pipeline_context_length, _draft_name, _info) and es_last_error may be
 * called from any thread at any time. Different pipelines run in parallel. Results are owned by
 * the caller and independent of their pipeline.
 */
#ifndef EDGESPEC_H
#define EDGESPEC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#ifdef EDGESPEC_BUILDING_LIBRARY
#define ES_API __declspec(dllexport)
#else
#define ES_API __declspec(dllimport)
#endif
#else
#define ES_API __attribute__((visibility("default")))
#endif

/* ABI version: bumped on any incompatible change of this header. */
#define ES_ABI_VERSION 6

typedef enum es_status {
    ES_OK = 0,
    ES_ERR_INVALID_ARGUMENT = 1, /* a NULL handle, an out-of-range value, ... */
    ES_ERR_IO = 2,               /* a file is missing or unreadable */
    ES_ERR_BUNDLE = 3,           /* the bundle or its manifest is malformed or of another schema */
    ES_ERR_DEVICE = 4,           /* the device is unknown or cannot compile the model */
    ES_ERR_CONTEXT = 5,          /* the prompt (plus generation) does not fit the context length */
    ES_ERR_BUFFER_TOO_SMALL = 6, /* two-call size query: the needed size was written */
    ES_ERR_CANCELLED = 7,        /* a callback asked to stop with an error, or es_cancel was called */
    ES_ERR_BUSY = 8,             /* the pipeline is running another call (see Threading above) */
    ES_ERR_INTERNAL = 99
} es_status;

/* The ABI version the library was built with (compare with ES_ABI_VERSION). */
ES_API int es_abi_version(void);

/* Version string of the edgespec library. Static storage. */
ES_API const char *es_version(void);

/* Version string of the OpenVINO runtime the library is linked with. Static storage. */
ES_API const char *es_openvino_version(void);

/* Comma-separated list of OpenVINO devices available on this machine (e.g. "CPU,GPU").
 * Two-call size query: with buf == NULL or *size too small, writes the needed size (including
 * the terminating NUL) to *size and returns ES_ERR_BUFFER_TOO_SMALL (or ES_OK when buf == NULL). */
ES_API es_status es_available_devices(char *buf, size_t *size);

/* The message of the last failing call on this thread ("" if none). Valid until the next call
 * that fails on this thread. */
ES_API const char *es_last_error(void);

/* ------------------------------------------------------------------------------------------ */
/* Pipelines: load a bundle, generate text.                                                    */
/* ------------------------------------------------------------------------------------------ */

/* The most draft tokens one round may propose (k and k_max are clamped to this). */
#define ES_MAX_DRAFT 32

/* The smallest draft_window (es_generation_config) other than 0. */
#define ES_MIN_DRAFT_WINDOW 128

/* Opaque handles. An es_pipeline owns the compiled models and tokenizers of one bundle; an
 * es_result owns the text, tokens and stats of one generation and outlives the pipeline. */
typedef struct es_pipeline es_pipeline;
typedef struct es_result es_result;

/* How a pipeline is loaded. Get the defaults with es_pipeline_default_params() and change
 * fields; strings are borrowed for the duration of es_pipeline_load() only. */
typedef struct es_pipeline_params {
    const char *device;                /* target device: "CPU", "GPU", "GPU.1", "NPU", "AUTO" (default "CPU") */
    const char *draft_device;          /* drafter device; NULL = same as device */
    const char *draft;                 /* drafter name from the bundle; NULL = the default: the first
                                          same_vocab or trimmed drafter, else the first cross_vocab
                                          drafter the bundle has token byte tables for, else none;
                                          "none" = load no drafter (autoregressive / n-gram only) */
    const char *precision;             /* inference precision hint "f32", "f16", "bf16"; NULL = device default */
    const char *kv_precision;          /* KV-cache precision "f32", "f16", "bf16", "u8"; NULL = device default */
    int32_t num_threads;               /* inference threads per model; 0 = device default */
    const char *tokenizers_extension;  /* path of libopenvino_tokenizers; NULL = $EDGESPEC_TOKENIZERS_EXTENSION,
                                          else found beside libopenvino (the openvino-tokenizers wheel) */
    const char *backend;               /* inference backend of the models (tokenizers always run on OpenVINO):
                                          NULL / "openvino" = OpenVINO, any device, OpenVINO IR and ONNX bundles
                                          (IR models run with paged attention on the CPU when OpenVINO can convert
                                          them -- rollback is then a length change -- else as the stateful graph);
                                          "openvino-paged" / "openvino-stateful" = IR bundles, one of the two forced
                                          (paged fails the load with ES_ERR_BUNDLE when the graph does not convert);
                                          "onnxruntime" = ONNX Runtime's CPU provider, ONNX bundles only, device
                                          "CPU" only; precision / kv_precision must stay NULL or "f32" (the graph's
                                          own types are used) and num_threads sets intra_op_num_threads.
                                          ONNX Runtime is loaded at run time (no link-time dependency): see ort_library */
    const char *ort_library;           /* "onnxruntime" backend: path of libonnxruntime (.so/.dylib/.dll); NULL =
                                          $EDGESPEC_ORT_LIBRARY, else the system's library search. The first library
                                          loaded serves the whole process. A missing or too old (< 1.13) library
                                          fails the load with ES_ERR_IO and a message naming the path. */
    int32_t fixed_shapes;              /* fixed-width copies of models run with paged attention on the CPU:
                                          OpenVINO runs a graph with a dynamic input shape through shape
                                          inference at every node on every call, which costs a small model
                                          about as much as its arithmetic. A copy compiled with its input width
                                          fixed serves the loop's most frequent calls: the target's 1..5-token
                                          calls (decode, verify at k <= 4) and the drafter's 1- and 2-token calls.
                                          All copies share one KV cache. Each holds the model's weights again
                                          and compiles at load. -1 = auto (default): models whose weights are
                                          at most 64 MiB (drafters, small targets); 0 = none; 1 = every model.
                                          es_pipeline_info lists the widths each model got. */
    int32_t verify;                    /* bundle integrity (ABI 5): exports record every file's size and BLAKE2b
                                          digests in edgespec.json. 1 (default) = check the sizes and digests of the
                                          files the pipeline reads before OpenVINO reads them (all cores hash
                                          64 MiB pieces in parallel); 0 = sizes only. A mismatch fails the load with
                                          ES_ERR_BUNDLE naming the file. Bundles exported before the digests
                                          existed load unchecked (es_pipeline_info says "integrity": "none"). */
    const char *translation_cache_dir; /* cross_vocab drafters: where the translation cache persists
                                         across processes (one file per drafter/target pair, keyed by
                                         both tokenizers). NULL = $EDGESPEC_CACHE/translation, else
                                         $XDG_CACHE_HOME/edgespec/translation, else
                                         ~/.cache/edgespec/translation; "" = keep it in memory only.
                                         A corrupt file is ignored (es_pipeline_info says so). */
    const char *adapt_log_dir;         /* opt-in: after each generation append {prompt, output, drafter} as a JSON
                                          line to DIR/adapt-log.jsonl (created private, 0700), the data
                                          `edgespec adapt` fine-tunes drafters on; bounded at 64 MiB (the oldest
                                          half is dropped). NULL = no log (the default): nothing is recorded. */
} es_pipeline_params;

/* Defaults: device "CPU", fixed_shapes -1, verify 1, everything else NULL / 0. */
ES_API es_pipeline_params es_pipeline_default_params(void);

/* Loads the bundle directory written by `edgespec export` (its edgespec.json, the target, the
 * chosen drafter and their tokenizers) and compiles the models. On success *out owns a new
 * pipeline (free it with es_pipeline_free). Errors: ES_ERR_IO / ES_ERR_BUNDLE (missing or
 * corrupt bundle, other schema version, a cross_vocab drafter named in a bundle without token
 * byte tables -- token_bytes.bin, written by exports since they exist), ES_ERR_DEVICE (unknown device; the message lists the
 * available ones), ES_ERR_INVALID_ARGUMENT (NULL arguments, bad precision name, unknown backend,
 * backend "onnxruntime" on an OpenVINO IR bundle), ES_ERR_IO (the ONNX Runtime library cannot be
 * loaded).
 * Bundles of either format ("openvino" stateful IR, "onnx" with explicit KV inputs) run through the
 * same decode loop; for ONNX bundles kv_precision does not apply (the KV cache is a graph input in
 * the graph's own type).
 * Every path in the manifest must stay inside bundle_dir: absolute paths, '..' and symbolic links
 * resolving outside it fail the load with ES_ERR_BUNDLE before anything is read.
 * A pipeline runs one generation at a time; use one pipeline per thread for parallel work. */
ES_API es_status es_pipeline_load(const char *bundle_dir, const es_pipeline_params *params, es_pipeline **out);

/* Frees a pipeline (NULL is fine: ES_OK). Results it produced stay valid. While a call runs on
 * it (a generation on another thread, or this is called from a stream callback) the pipeline is
 * NOT freed and ES_ERR_BUSY is returned: es_cancel it and free it after that call has returned.
 * A handle freed already gets ES_ERR_INVALID_ARGUMENT. (Returned void before ABI 5.) */
ES_API es_status es_pipeline_free(es_pipeline *pipeline);

/* Asks the generation running on the pipeline, if any, to stop: es_generate returns
 * ES_ERR_CANCELLED (no result) promptly: from inside a model call where the backend allows it (a
 * long prompt's prefill stops between graph nodes with OpenVINO's paged attention, the default on
 * the CPU, and between kernels on ONNX Runtime; the stateful and ONNX graphs on OpenVINO stop
 * before their next call), and before the next stream callback; the pipeline stays usable. Thread-safe: it only takes a lock, sets flags
 * and asks the backends to stop, so call it from another thread, a signal-watching thread, or the stream callback. With no generation
 * running it does nothing. ES_OK, or ES_ERR_INVALID_ARGUMENT for a handle that is not a live pipeline. (ABI 5.) */
ES_API es_status es_cancel(es_pipeline *pipeline);

/* Context length of the target model, in tokens (0 for NULL). */
ES_API int64_t es_pipeline_context_length(const es_pipeline *pipeline);

/* Name of the loaded drafter, or "" when none is loaded. Valid while the pipeline lives. */
ES_API const char *es_pipeline_draft_name(const es_pipeline *pipeline);

/* What the pipeline runs, as one line of JSON owned by the pipeline (valid until it is freed):
 * {"target": {"backend": B, "device": D, "fixed_widths": W, "split_widths": S}, "draft": {"name": N,
 *  "backend": B, "device": D, "fixed_widths": W, "split_widths": S} or null, "text": "byte-table" | "detokenizer",
 *  "integrity": "verified" | "sizes" | "none", "integrity_ms": T, ...}
 * B is the backend each model got (openvino-paged | openvino-stateful | openvino-explicit-kv |
 * onnxruntime; "openvino" picks one per model); "text" is how streamed text is made: from the
 * target's token byte table (when it spells text exactly as the detokenizer does) or by running
 * the detokenizer every round; W lists the call widths served by a fixed-width copy of the model
 * (see fixed_shapes; [] when none); S lists the call widths the attention gets as one-token
 * subsequences (paged attention on the CPU with a float KV cache: a short call then reads the cache
 * in place instead of repacking it; [] when none); T is the time the load spent checking the files'
 * sizes and digests, in milliseconds. "" for a NULL pipeline. */
ES_API const char *es_pipeline_info(const es_pipeline *pipeline);

/* Which drafting policy proposes tokens each round. */
typedef enum es_policy {
    ES_POLICY_AUTO = 0,           /* the drafter when one is loaded, else autoregressive */
    ES_POLICY_AUTOREGRESSIVE = 1, /* plain decoding: one target call per token (the baseline) */
    ES_POLICY_DRAFT = 2,          /* the loaded draft model: same-vocabulary, trimmed, or cross-vocabulary
                                     (its own tokenizer; it drafts greedily and its text is re-tokenized
                                     into target ids, so sampling stays lossless) */
    ES_POLICY_NGRAM = 3           /* prompt lookup: an n-gram cache over the context, no model */
} es_policy;

/* Why a generation ended. */
typedef enum es_finish_reason {
    ES_FINISH_EOS = 0,         /* the target produced an end-of-sequence token */
    ES_FINISH_STOP_STRING = 1, /* a stop string appeared (the text ends before it) */
    ES_FINISH_MAX_TOKENS = 2,  /* max_new_tokens were generated */
    ES_FINISH_CONTEXT = 3,     /* the context length of the target is full */
    ES_FINISH_CALLBACK = 4     /* the stream callback returned 1 (stop) */
} es_finish_reason;

/* One generation's settings. Get the defaults with es_generation_default_config(). */
typedef struct es_generation_config {
    int32_t max_new_tokens;  /* >= 1 (default 128) */
    es_policy policy;        /* default ES_POLICY_AUTO */
    int32_t k;               /* draft tokens per round: 1..ES_MAX_DRAFT fixed, -1 = adaptive (default -1): each round
                                verifies the number of drafted tokens (0..k_max; 0 = a plain step) with the most
                                expected tokens per ms, from the target-call costs the pipeline has measured and
                                either the drafter's calibrated confidence in each token (drafter models) or the
                                acceptance history (n-gram, cross-vocabulary). Sampling (temperature > 0)
                                never schedules from timings, so a seed reproduces its sample: k moves from
                                the generation's own acceptance history (+1 after a round accepted in full,
                                -1 after one that accepted less than half) */
    int32_t k_max;           /* upper bound of adaptive k, 1..ES_MAX_DRAFT (default 8) */
    float temperature;       /* 0 = greedy (default); > 0 = sampling */
    int32_t top_k;           /* sampling: keep the k most likely tokens; 0 = all (default) */
    float top_p;             /* sampling: nucleus mass in (0, 1] (default 1) */
    uint64_t seed;           /* sampling RNG seed (default 0); same seed and settings, same output
                                (on the same device and precision) */
    int32_t ignore_eos;      /* nonzero: do not stop at EOS tokens */
    float draft_stop_prob;   /* a drafter stops a round early when its top-1 probability falls
                                below this; 0 = never (default) */
    const char *const *stop; /* stop strings (borrowed during es_generate), or NULL */
    size_t n_stop;           /* number of stop strings */
    int32_t draft_window;    /* the most context tokens a drafter model reads, in its own tokens: its first 4
                                (attention sinks) and the latest ones (a cross-vocabulary drafter: the
                                latest text, re-tokenized from a word start). When a round
                                would overflow the window, the drafter re-reads the latest draft_window / 2
                                tokens after the sinks, so its per-token cost stays that of a short context
                                however long the prompt. The target always reads everything: the output
                                does not change, only which tokens are proposed. 0 = as many as the
                                drafter's own context length holds (then a drafter keeps drafting past its
                                context length the same way); else >= ES_MIN_DRAFT_WINDOW (default 1024).
                                An EAGLE-3 head reads the latest draft_window positions of a longer prompt
                                (no sinks, no sliding: it reads every generated position) */
    int32_t lookup;          /* policy DRAFT (ABI 6): 1 (default) = prompt lookup beside the drafter: a round whose
                                context ends with 3 or 4 tokens that occurred before proposes what followed
                                them there, without calling the drafter (text that repeats, such as code,
                                drafts for free and longer); how many of them it verifies is chosen like k,
                                from the measured call costs and how often lookups were accepted (up to k_max).
                                Greedy: a drafter round whose drafted tokens run into text seen before also
                                verifies what followed it there, after them in the same call (a lookup tail),
                                as far as the chain's odds and the longer call pay.
                                The drafter still reads every committed token. 0 = the drafter every round */
} es_generation_config;

/* Defaults as documented on each field. */
ES_API es_generation_config es_generation_default_config(void);

/* Receives UTF-8 text as it is generated: text_delta[0..len) is never a partial character and
 * the deltas of one generation concatenate exactly to es_result_text(). text_delta is NOT
 * NUL-terminated and is valid only during the call. Return 0 to continue, 1 to stop normally
 * (finish reason ES_FINISH_CALLBACK, a result is returned), 2 to cancel (es_generate returns
 * ES_ERR_CANCELLED and no result). Called on the thread that called es_generate. */
typedef int (*es_stream_callback)(const char *text_delta, size_t len, void *user_data);

/* Stats of one generation; names and definitions in docs/metrics.md. Times in milliseconds.
 *   total_ms     from the call of es_generate to its return, prompt tokenization included
 *   ttft_ms      from the call to the first generated token (tokenize + target prefill + first sample)
 *   tpot_ms      (total_ms - ttft_ms) / (generated_tokens - 1); 0 when one token was generated
 *   tokens_per_s generated_tokens / total_ms * 1000
 *   verify_ms    time in target model calls (prefill included; prefill_ms is that part)
 *   draft_ms     time in the policy's propose() (draft model calls and draft sampling)
 *   other_ms     loop overhead: total_ms - verify_ms - draft_ms - tokenize_ms - callback_ms
 *                (target sampling/acceptance, bookkeeping, KV compaction, detokenize, stop checks)
 *   target_calls target model calls, prefill included; mean_accepted = generated_tokens / target_calls
 *   drafted / accepted: draft tokens proposed / accepted; acceptance_rate = accepted / drafted
 *   accepted_hist[n]: verify rounds (prefill excluded) in which exactly n draft tokens were accepted
 *   draft_prefill_ms / draft_prefill_tokens: of draft_ms, the drafter calls that read context it
 *                had not seen (the prompt at the first round, the recent part again after a
 *                window slide, tokens committed while adaptive k drafted nothing), and the tokens
 *                they read: the drafter's counterpart of prefill_ms, though it falls after the
 *                first token (the engine streams that first, then the drafter reads the prompt)
 *   translation_hits / _misses / _disk_hits / _ms: a cross_vocab drafter's translation cache this
 *                generation (0 for other policies); disk hits are those a cache saved by an earlier
 *                process served, translation_ms the tokenizer time the misses cost */
typedef struct es_stats {
    double ttft_ms;
    double tpot_ms;
    double tokens_per_s;
    double total_ms;
    double draft_ms;
    double verify_ms;
    double other_ms;
    double prefill_ms;
    double tokenize_ms;
    double callback_ms;
    int64_t prompt_tokens;
    int64_t generated_tokens;
    int64_t target_calls;
    int64_t drafted;
    int64_t accepted;
    double acceptance_rate;
    double mean_accepted;
    int64_t kv_compactions; /* times dead KV slots were compacted away (all models) */
    int32_t final_k;        /* the draft length of the last round (adaptive k moves it; 0 = a plain step) */
    es_finish_reason finish_reason;
    int64_t accepted_hist[ES_MAX_DRAFT + 1];
    double draft_prefill_ms;
    int64_t draft_prefill_tokens;
    int64_t translation_hits; /* cross_vocab drafters: translation cache hits and misses */
    int64_t translation_misses;
    int64_t translation_disk_hits; /* of the hits, those on entries read from the saved cache file */
    double translation_ms;         /* time spent tokenizing on misses */
    int64_t draft_window_slides;   /* times the drafter's window slid (it re-read the latest context after
                                      its first tokens; see es_generation_config.draft_window) */
    int64_t lookup_drafted;        /* of drafted / accepted: the tokens proposed by prompt lookup (ABI 6; see */
    int64_t lookup_accepted;       /* es_generation_config.lookup) and the target accepted */
} es_stats;

/* Generates from a prompt (UTF-8, tokenized with the bundle's target tokenizer as is; apply a
 * chat template before if the model needs one). config == NULL uses the defaults; callback may
 * be NULL. On success *out owns a new result (free it with es_result_free). Errors:
 * ES_ERR_INVALID_ARGUMENT (NULL pipeline/prompt/out, invalid config values, policy DRAFT with no
 * drafter loaded, a prompt or stop string that is not valid UTF-8), ES_ERR_CONTEXT (the prompt alone fills the target context),
 * ES_ERR_CANCELLED (the callback returned 2, or es_cancel), ES_ERR_BUSY (another call runs on the
 * pipeline, or this is called from its own stream callback), ES_ERR_BUNDLE (the tokenizer produced
 * an id outside the model's vocabulary: the bundle's tokenizer does not belong to its model). */
ES_API es_status es_generate(es_pipeline *pipeline, const char *prompt, const es_generation_config *config, es_stream_callback callback,
                             void *user_data, es_result **out);

/* The generated text (NUL-terminated UTF-8, EOS and text from a stop string on excluded).
 * Valid until es_result_free. NULL for a NULL result. */
ES_API const char *es_result_text(const es_result *result);

/* Length in bytes of es_result_text() (terminator excluded; 0 for NULL). The text may contain
 * U+0000 (a NUL byte) where the model generated it: read es_result_text()[0..len), not up to
 * the first NUL. */
ES_API size_t es_result_text_len(const es_result *result);

/* The generated token ids (target vocabulary, EOS excluded); *n receives the count (n may be
 * NULL). Valid until es_result_free. */
ES_API const int64_t *es_result_tokens(const es_result *result, size_t *n);

/* Copies the stats of the generation into *out. */
ES_API es_status es_result_stats(const es_result *result, es_stats *out);

/* Frees a result (NULL is fine). */
ES_API void es_result_free(es_result *result);

/* Tokenizes text (UTF-8; otherwise ES_ERR_INVALID_ARGUMENT) with the target tokenizer. Two-call
 * size query: with ids == NULL or *n too small, writes the needed count to *n and returns ES_OK
 * (ids == NULL) or ES_ERR_BUFFER_TOO_SMALL. */
ES_API es_status es_tokenize(es_pipeline *pipeline, const char *text, int64_t *ids, size_t *n);

/* Detokenizes ids with the target detokenizer into buf (NUL-terminated UTF-8). Two-call size
 * query as es_available_devices. */
ES_API es_status es_detokenize(es_pipeline *pipeline, const int64_t *ids, size_t n_ids, char *buf, size_t *size);

#ifdef __cplusplus
}
#endif
#endif /* EDGESPEC_H */
