/*
 * edgespec_stream — the smallest complete use of the C ABI:
 *
 *   edgespec_stream BUNDLE_DIR "prompt" [max_new_tokens] [draft|none|ngram|ar]
 *
 * loads the bundle on the CPU, streams the generation to stdout as it is produced, then prints
 * the stats to stderr. Exit status: 0 on success, 1 on an edgespec error (message on stderr).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgespec.h"

static int on_text(const char *text_delta, size_t len, void *user_data) {
    size_t *chunks = (size_t *)user_data;
    fwrite(text_delta, 1, len, stdout);
    fflush(stdout);
    ++*chunks;
    return 0; /* continue */
}

static const char *finish_name(es_finish_reason r) {
    switch (r) {
        case ES_FINISH_EOS:
            return "eos";
        case ES_FINISH_STOP_STRING:
            return "stop_string";
        case ES_FINISH_MAX_TOKENS:
            return "max_tokens";
        case ES_FINISH_CONTEXT:
            return "context";
        case ES_FINISH_CALLBACK:
            return "callback";
    }
    return "?";
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s BUNDLE_DIR \"prompt\" [max_new_tokens] [draft|none|ngram|ar]\n", argv[0]);
        return 2;
    }
    const char *mode = argc > 4 ? argv[4] : "draft";

    es_pipeline_params params = es_pipeline_default_params();
    params.precision = "f32";
    params.kv_precision = "f32";
    if (strcmp(mode, "draft") != 0) params.draft = "none";

    es_pipeline *pipe = NULL;
    if (es_pipeline_load(argv[1], &params, &pipe) != ES_OK) {
        fprintf(stderr, "error: %s\n", es_last_error());
        return 1;
    }

    es_generation_config config = es_generation_default_config();
    config.max_new_tokens = argc > 3 ? atoi(argv[3]) : 64;
    if (strcmp(mode, "ngram") == 0) config.policy = ES_POLICY_NGRAM;
    if (strcmp(mode, "ar") == 0) config.policy = ES_POLICY_AUTOREGRESSIVE;

    size_t chunks = 0;
    es_result *result = NULL;
    es_status status = es_generate(pipe, argv[2], &config, on_text, &chunks, &result);
    if (status != ES_OK) {
        fprintf(stderr, "error: %s\n", es_last_error());
        es_pipeline_free(pipe);
        return 1;
    }
    printf("\n");

    es_stats stats;
    es_result_stats(result, &stats);
    size_t n_tokens = 0;
    es_result_tokens(result, &n_tokens);
    fprintf(stderr,
            "chunks=%zu tokens=%zu generated_tokens=%lld target_calls=%lld drafted=%lld accepted=%lld "
            "acceptance_rate=%.3f mean_accepted=%.3f ttft_ms=%.2f tpot_ms=%.3f tokens_per_s=%.1f "
            "draft_ms=%.2f verify_ms=%.2f other_ms=%.2f finish_reason=%s draft=%s\n",
            chunks, n_tokens, (long long)stats.generated_tokens, (long long)stats.target_calls, (long long)stats.drafted,
            (long long)stats.accepted, stats.acceptance_rate, stats.mean_accepted, stats.ttft_ms, stats.tpot_ms, stats.tokens_per_s,
            stats.draft_ms, stats.verify_ms, stats.other_ms, finish_name(stats.finish_reason), es_pipeline_draft_name(pipe));

    es_result_free(result);
    es_pipeline_free(pipe);
    return 0;
}
