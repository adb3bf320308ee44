/*
 * abi_misuse.c -- C ABI misuse cases against libedgespec: every case must end with a status and a
 * sentence (or the documented neutral answer), never a crash or a hang.
 *
 *   abi_misuse BUNDLE [FIRST] [LAST]   runs cases FIRST..LAST (default: all), one line per case:
 *     "start N name"  before it runs (so a harness can tell which case a crash belongs to), then
 *     "case N name: ok|FAIL status=S ms=T msg=..."
 *   abi_misuse --count                  prints the number of cases.
 *
 * Built by tests/test_reliability_abi.py and lab/reliability/run.py against the header and the
 * built library; the harness runs it in a subprocess and restarts it after the case that crashed.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>  /* getpid */

#include "edgespec.h"

static const char *g_bundle;
static es_pipeline *g_pipe;    /* loaded with the default drafter */
static es_pipeline *g_plain;   /* loaded with draft "none" */
static char g_msg[512];
static char g_dir[4096];       /* a scratch directory (no manifest) */

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* One-line copy of es_last_error(); a newline in it fails the case (messages are one sentence). */
static int take_msg(void) {
    const char *m = es_last_error();
    snprintf(g_msg, sizeof g_msg, "%s", m ? m : "(null)");
    return strchr(m ? m : "", '\n') == NULL;
}

static es_generation_config small_config(int n) {
    es_generation_config c = es_generation_default_config();
    c.max_new_tokens = n;
    c.ignore_eos = 1;
    return c;
}

static es_pipeline *load(const char *draft) {
    es_pipeline_params p = es_pipeline_default_params();
    p.draft = draft;
    p.precision = "f32";
    p.kv_precision = "f32";
    es_pipeline *out = NULL;
    if (es_pipeline_load(g_bundle, &p, &out) != ES_OK) return NULL;
    return out;
}

static es_pipeline *pipe_(void) {
    if (!g_pipe) g_pipe = load(NULL);
    return g_pipe;
}

static es_pipeline *plain(void) {
    if (!g_plain) g_plain = load("none");
    return g_plain;
}

/* ---- generation helpers --------------------------------------------------------------------- */

static es_status gen(es_pipeline *p, const char *prompt, const es_generation_config *c, es_stream_callback cb, void *ud) {
    es_result *r = NULL;
    es_status s = es_generate(p, prompt, c, cb, ud, &r);
    if (s == ES_OK && !r) return (es_status)-1;
    if (s != ES_OK && r) return (es_status)-2;
    es_result_free(r);
    return s;
}

static es_status load_with(es_pipeline_params p, const char *dir) {
    es_pipeline *out = NULL;
    es_status s = es_pipeline_load(dir, &p, &out);
    if (s == ES_OK) es_pipeline_free(out);
    else if (out) return (es_status)-2;
    return s;
}

/* Inside-the-callback misuse: the callback runs `what` on the same pipeline once and records its status. */
struct reentry {
    es_pipeline *p;
    int what;
    es_status inner;
    int calls;
};

static int reenter_cb(const char *t, size_t n, void *ud) {
    (void)t, (void)n;
    struct reentry *r = (struct reentry *)ud;
    if (r->calls++ != 1) return 0;
    es_generation_config c = small_config(4);
    switch (r->what) {
    case 0: r->inner = gen(r->p, "x", &c, NULL, NULL); break;
    case 1: r->inner = es_pipeline_free(r->p); break;
    case 2: {
        size_t n_ids = 0;
        r->inner = es_tokenize(r->p, "hello", NULL, &n_ids);
        break;
    }
    case 3: {
        int64_t id = 1;
        size_t size = 0;
        r->inner = es_detokenize(r->p, &id, 1, NULL, &size);
        break;
    }
    case 4: r->inner = es_cancel(r->p); break;
    }
    take_msg();
    return 0;
}

static int count_cb(const char *t, size_t n, void *ud) {
    (void)t, (void)n;
    int *calls = (int *)ud;
    return ++*calls >= 5 ? 1 : 0;
}

static int answer_cb(const char *t, size_t n, void *ud) {
    (void)t, (void)n;
    return *(int *)ud;
}

/* A generation on another thread; `started` is set once its first text arrives. */
struct bg {
    es_pipeline *p;
    int max_new;
    volatile int started;
    es_status status;
    pthread_t th;
};

static int bg_cb(const char *t, size_t n, void *ud) {
    (void)t, (void)n;
    ((struct bg *)ud)->started = 1;
    return 0;
}

static void *bg_main(void *arg) {
    struct bg *b = (struct bg *)arg;
    es_generation_config c = small_config(b->max_new);
    b->status = gen(b->p, "def fib(n):", &c, bg_cb, b);
    b->started = 1;
    return NULL;
}

static void bg_start(struct bg *b, es_pipeline *p, int max_new) {
    memset(b, 0, sizeof *b);
    b->p = p;
    b->max_new = max_new;
    b->status = (es_status)-3;
    pthread_create(&b->th, NULL, bg_main, b);
    struct timespec ms = {0, 1000000};
    while (!b->started) nanosleep(&ms, NULL);
}

/* ---- the cases -------------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    int (*run)(int arg, es_status *status);  /* returns 1 when the answer is the expected one */
    int arg;
} test_case;

#define EXPECT(cond) return (cond)

static int c_abi_version(int a, es_status *s) { (void)a; *s = ES_OK; EXPECT(es_abi_version() == ES_ABI_VERSION); }
static int c_version(int a, es_status *s) { (void)a; *s = ES_OK; EXPECT(es_version() && *es_version() && es_openvino_version()); }
static int c_devices(int a, es_status *s) {
    size_t size = (size_t)a;
    char buf[4];
    if (a == 0) { *s = es_available_devices(NULL, NULL); EXPECT(*s == ES_ERR_INVALID_ARGUMENT); }
    if (a == 1) { *s = es_available_devices(NULL, &size); EXPECT(*s == ES_OK && size > 1); }
    size = 1;
    *s = es_available_devices(buf, &size);
    EXPECT(*s == ES_ERR_BUFFER_TOO_SMALL && size > 1);
}
static int c_last_error(int a, es_status *s) { (void)a; *s = ES_OK; EXPECT(es_last_error() != NULL); }

static int c_load_args(int a, es_status *s) {
    es_pipeline *out = (es_pipeline *)&out;
    switch (a) {
    case 0: *s = es_pipeline_load(NULL, NULL, &out); EXPECT(*s == ES_ERR_INVALID_ARGUMENT && out == NULL);
    case 1: *s = es_pipeline_load(g_bundle, NULL, NULL); EXPECT(*s == ES_ERR_INVALID_ARGUMENT);
    case 2: *s = es_pipeline_load("/nonexistent/edgespec-bundle", NULL, &out); EXPECT(*s == ES_ERR_IO && out == NULL);
    case 3: *s = es_pipeline_load("/etc/hostname", NULL, &out); EXPECT(*s == ES_ERR_IO && out == NULL);
    case 4: *s = es_pipeline_load(g_dir, NULL, &out); EXPECT(*s == ES_ERR_BUNDLE && out == NULL);
    case 5: *s = es_pipeline_load("", NULL, &out); EXPECT(*s == ES_ERR_IO && out == NULL);
    }
    return 0;
}

static int c_load_params(int a, es_status *s) {
    es_pipeline_params p = es_pipeline_default_params();
    es_status want = ES_ERR_INVALID_ARGUMENT;
    switch (a) {
    case 0: p.device = "XPU"; want = ES_ERR_DEVICE; break;
    case 1: p.device = ""; want = ES_ERR_DEVICE; break;
    case 2: p.draft_device = "NOPE.7"; want = ES_ERR_DEVICE; break;
    case 3: p.precision = "f8"; break;
    case 4: p.kv_precision = "q3"; break;
    case 5: p.precision = "u8"; break;
    case 6: p.backend = "nope"; break;
    case 7: p.fixed_shapes = 7; break;
    case 8: p.fixed_shapes = -2; break;
    case 9: p.verify = 5; break;
    case 10: p.verify = -1; break;
    case 11: p.num_threads = -1; break;
    case 12: p.num_threads = INT32_MIN; break;
    case 13: p.draft = "nope"; break;
    case 14: p.backend = "onnxruntime"; break;  /* an OpenVINO IR bundle */
    case 15: p.tokenizers_extension = "/nonexistent/libopenvino_tokenizers.so"; want = ES_ERR_IO; break;
    case 16: p.device = "CPU\n"; want = ES_ERR_DEVICE; break;
    }
    *s = load_with(p, g_bundle);
    /* the tokenizers extension is loaded once per process: after an earlier load it is not looked up again */
    if (a == 15 && *s == ES_OK) return 1;
    EXPECT(*s == want);
}

static int c_load_ok(int a, es_status *s) {
    *s = (a == 0 ? pipe_() : plain()) ? ES_OK : es_pipeline_load(g_bundle, NULL, NULL);
    take_msg();
    EXPECT(*s == ES_OK);
}

static int c_getters(int a, es_status *s) {
    int stray = 0;
    es_pipeline *bad = (es_pipeline *)&stray;
    *s = ES_OK;
    switch (a) {
    case 0: EXPECT(es_pipeline_context_length(NULL) == 0 && strcmp(es_pipeline_draft_name(NULL), "") == 0 && strcmp(es_pipeline_info(NULL), "") == 0);
    case 1: EXPECT(es_pipeline_context_length(bad) == 0 && strcmp(es_pipeline_draft_name(bad), "") == 0 && strcmp(es_pipeline_info(bad), "") == 0);
    case 2: EXPECT(es_pipeline_context_length(pipe_()) > 0 && strstr(es_pipeline_info(pipe_()), "\"integrity\"") != NULL);
    case 3: EXPECT(strcmp(es_pipeline_draft_name(plain()), "") == 0);
    }
    return 0;
}

static int c_generate_args(int a, es_status *s) {
    es_result *r = (es_result *)&r;
    es_generation_config c = small_config(2);
    int stray = 0;
    switch (a) {
    case 0: *s = es_generate(NULL, "x", &c, NULL, NULL, &r); EXPECT(*s == ES_ERR_INVALID_ARGUMENT && r == NULL);
    case 1: *s = es_generate(pipe_(), NULL, &c, NULL, NULL, &r); EXPECT(*s == ES_ERR_INVALID_ARGUMENT && r == NULL);
    case 2: *s = es_generate(pipe_(), "x", &c, NULL, NULL, NULL); EXPECT(*s == ES_ERR_INVALID_ARGUMENT);
    case 3: *s = es_generate((es_pipeline *)&stray, "x", &c, NULL, NULL, &r); EXPECT(*s == ES_ERR_INVALID_ARGUMENT && r == NULL);
    case 4: *s = gen(pipe_(), "x", NULL, NULL, NULL); EXPECT(*s == ES_OK);  /* NULL config: the defaults */
    }
    return 0;
}

static int c_config(int a, es_status *s) {
    es_generation_config c = small_config(2);
    const char *stops[2] = {"ok", NULL};
    const char *empty[1] = {""};
    const char *bad_utf8[1] = {"\xff\xfe"};
    switch (a) {
    case 0: c.max_new_tokens = 0; break;
    case 1: c.max_new_tokens = -1; break;
    case 2: c.max_new_tokens = INT32_MIN; break;
    case 3: c.k = 0; break;
    case 4: c.k = ES_MAX_DRAFT + 1; break;
    case 5: c.k = -2; break;
    case 6: c.k_max = 0; break;
    case 7: c.k_max = ES_MAX_DRAFT + 1; break;
    case 8: c.temperature = -1.f; break;
    case 9: c.temperature = NAN; break;
    case 10: c.temperature = INFINITY; break;
    case 11: c.top_k = -1; break;
    case 12: c.top_p = 0.f; break;
    case 13: c.top_p = 1.5f; break;
    case 14: c.top_p = NAN; break;
    case 15: c.draft_stop_prob = 1.f; break;
    case 16: c.draft_stop_prob = -0.1f; break;
    case 17: c.draft_stop_prob = NAN; break;
    case 18: c.draft_window = 1; break;
    case 19: c.draft_window = ES_MIN_DRAFT_WINDOW - 1; break;
    case 20: c.draft_window = -5; break;
    case 21: c.policy = (es_policy)4; break;
    case 22: c.policy = (es_policy)-1; break;
    case 23: c.n_stop = 2; c.stop = NULL; break;
    case 24: c.n_stop = 2; c.stop = stops; break;  /* stop[1] is NULL */
    case 25: c.n_stop = 1; c.stop = empty; break;
    case 26: c.n_stop = 1; c.stop = bad_utf8; break;
    case 27: c.policy = ES_POLICY_DRAFT; *s = gen(plain(), "x", &c, NULL, NULL); EXPECT(*s == ES_ERR_INVALID_ARGUMENT);
    }
    *s = gen(pipe_(), "x", &c, NULL, NULL);
    EXPECT(*s == ES_ERR_INVALID_ARGUMENT);
}

static int c_prompts(int a, es_status *s) {
    static const char *bad[] = {"\xff", "ok \xc3", "\xed\xa0\x80", "\xc0\xaf", "\xf5\x80\x80\x80", "a\x80z", "\xe2\x82"};
    es_generation_config c = small_config(2);
    if (a < 7) {
        *s = gen(pipe_(), bad[a], &c, NULL, NULL);
        EXPECT(*s == ES_ERR_INVALID_ARGUMENT);
    }
    if (a == 7) { *s = gen(pipe_(), "", &c, NULL, NULL); EXPECT(*s == ES_OK || *s == ES_ERR_INVALID_ARGUMENT); }
    /* a prompt longer than any tiny model's context */
    size_t n = 1 << 20;
    char *big = (char *)malloc(n + 1);
    for (size_t i = 0; i < n; ++i) big[i] = "ab c"[i % 4];
    big[n] = 0;
    *s = gen(pipe_(), big, &c, NULL, NULL);
    free(big);
    EXPECT(*s == ES_ERR_CONTEXT);
}

static int c_callback(int a, es_status *s) {
    es_generation_config c = small_config(12);
    int answer = a == 0 ? 2 : a == 1 ? 1 : a == 2 ? 7 : -1;
    *s = gen(pipe_(), "def fib(n):", &c, answer_cb, &answer);
    if (a == 0) EXPECT(*s == ES_ERR_CANCELLED);
    EXPECT(*s == ES_OK);
}

static int c_huge_max_new(int a, es_status *s) {
    es_generation_config c = small_config(INT32_MAX);
    int calls = 0;
    c.ignore_eos = a;
    *s = gen(pipe_(), "def fib(n):", &c, count_cb, &calls);  /* stops after 5 deltas */
    EXPECT(*s == ES_OK);
}

static int c_reentry(int a, es_status *s) {
    struct reentry r = {pipe_(), a, (es_status)-3, 0};
    es_generation_config c = small_config(16);
    es_result *res = NULL, *ref = NULL;
    es_generate(pipe_(), "def fib(n):", &c, NULL, NULL, &ref);
    *s = es_generate(pipe_(), "def fib(n):", &c, reenter_cb, &r, &res);
    int ok;
    if (a == 4) {
        ok = *s == ES_ERR_CANCELLED && r.inner == ES_OK && res == NULL;
    } else {
        /* the inner call is refused and the outer generation is unchanged */
        size_t n1 = 0, n2 = 0;
        const int64_t *t1 = es_result_tokens(ref, &n1), *t2 = es_result_tokens(res, &n2);
        ok = *s == ES_OK && r.inner == ES_ERR_BUSY && n1 == n2 && n1 > 0 && memcmp(t1, t2, n1 * sizeof *t1) == 0;
        *s = r.inner;
    }
    es_result_free(res);
    es_result_free(ref);
    return ok;
}

static int c_threads(int a, es_status *s) {
    struct bg b;
    es_pipeline *p = a >= 5 ? load(NULL) : pipe_();
    if (!p) { *s = (es_status)-4; take_msg(); return 0; }
    bg_start(&b, p, a == 3 ? 100000 : 200);
    es_generation_config c = small_config(4);
    int ok = 0;
    double t0 = now_ms();
    switch (a) {
    case 0: *s = gen(p, "x", &c, NULL, NULL); ok = *s == ES_ERR_BUSY; break;
    case 1: *s = es_pipeline_free(p); ok = *s == ES_ERR_BUSY; break;
    case 2: {
        size_t n = 0;
        *s = es_tokenize(p, "hello", NULL, &n);
        ok = *s == ES_ERR_BUSY;
        break;
    }
    case 3: case 5:
        *s = es_cancel(p);
        pthread_join(b.th, NULL);
        fprintf(stdout, "cancel_ms=%.1f\n", now_ms() - t0);
        ok = *s == ES_OK && b.status == ES_ERR_CANCELLED;
        break;
    case 4: {  /* a second pipeline generates in parallel */
        es_pipeline *q = plain();
        *s = gen(q, "x", &c, NULL, NULL);
        ok = *s == ES_OK;
        break;
    }
    case 6: {  /* cancel and free at once from this thread: the free waits for no one, it is refused or done after */
        es_cancel(p);
        pthread_join(b.th, NULL);
        *s = es_pipeline_free(p);
        ok = *s == ES_OK && b.status == ES_ERR_CANCELLED;
        p = NULL;
        break;
    }
    }
    take_msg();
    if (a != 3 && a != 5 && a != 6) pthread_join(b.th, NULL);
    if (a != 3 && a != 5 && a != 6) ok = ok && b.status == ES_OK;
    if (a >= 5 && p) es_pipeline_free(p);
    return ok;
}

static int c_cancel(int a, es_status *s) {
    int stray = 0;
    es_generation_config c = small_config(4);
    switch (a) {
    case 0: *s = es_cancel(NULL); EXPECT(*s == ES_ERR_INVALID_ARGUMENT);
    case 1: *s = es_cancel((es_pipeline *)&stray); EXPECT(*s == ES_ERR_INVALID_ARGUMENT);
    case 2:  /* a cancel with nothing running does not stick to the next generation */
        *s = es_cancel(pipe_());
        EXPECT(*s == ES_OK && gen(pipe_(), "x", &c, NULL, NULL) == ES_OK);
    }
    return 0;
}

static int c_results(int a, es_status *s) {
    es_stats st;
    int stray = 0;
    size_t n = 7;
    es_result *r = NULL;
    es_generation_config c = small_config(3);
    *s = ES_OK;
    switch (a) {
    case 0: EXPECT(es_result_text(NULL) == NULL && es_result_text_len(NULL) == 0);
    case 1: EXPECT(es_result_tokens(NULL, &n) == NULL && n == 0 && es_result_tokens(NULL, NULL) == NULL);
    case 2: *s = es_result_stats(NULL, &st); EXPECT(*s == ES_ERR_INVALID_ARGUMENT);
    case 3: es_result_free(NULL); return 1;
    case 4: EXPECT(es_result_text((es_result *)&stray) == NULL && es_result_text_len((es_result *)&stray) == 0);
    case 5: es_result_free((es_result *)&stray); return 1;  /* a stray pointer is ignored, not freed */
    }
    *s = es_generate(pipe_(), "x", &c, NULL, NULL, &r);
    if (*s != ES_OK) return 0;
    switch (a) {
    case 6: *s = es_result_stats(r, NULL); es_result_free(r); EXPECT(*s == ES_ERR_INVALID_ARGUMENT);
    case 7: es_result_free(r); es_result_free(r); return 1;  /* double free */
    case 8:
        es_result_free(r);
        *s = es_result_stats(r, &st);
        EXPECT(*s == ES_ERR_INVALID_ARGUMENT && es_result_text(r) == NULL && es_result_tokens(r, &n) == NULL && n == 0);
    case 9: {  /* results outlive their pipeline */
        es_result *r2 = NULL;
        es_pipeline *q = load("none");
        es_generate(q, "x", &c, NULL, NULL, &r2);
        es_pipeline_free(q);
        int ok = r2 && es_result_text(r2) != NULL && es_result_stats(r2, &st) == ES_OK && st.generated_tokens == 3;
        es_result_free(r2);
        es_result_free(r);
        return ok;
    }
    }
    return 0;
}

static int c_tokenize(int a, es_status *s) {
    size_t n = 0;
    int64_t ids[2];
    switch (a) {
    case 0: *s = es_tokenize(NULL, "x", NULL, &n); EXPECT(*s == ES_ERR_INVALID_ARGUMENT);
    case 1: *s = es_tokenize(pipe_(), NULL, NULL, &n); EXPECT(*s == ES_ERR_INVALID_ARGUMENT);
    case 2: *s = es_tokenize(pipe_(), "x", NULL, NULL); EXPECT(*s == ES_ERR_INVALID_ARGUMENT);
    case 3: *s = es_tokenize(pipe_(), "hello world, this is text", NULL, &n); EXPECT(*s == ES_OK && n > 2);
    case 4: n = 1; *s = es_tokenize(pipe_(), "hello world, this is text", ids, &n); EXPECT(*s == ES_ERR_BUFFER_TOO_SMALL && n > 2);
    case 5: n = 0; *s = es_tokenize(pipe_(), "hello world", ids, &n); EXPECT(*s == ES_ERR_BUFFER_TOO_SMALL);
    case 6: *s = es_tokenize(pipe_(), "\xff\xfe", NULL, &n); EXPECT(*s == ES_ERR_INVALID_ARGUMENT);
    case 7: *s = es_tokenize(pipe_(), "", NULL, &n); EXPECT(*s == ES_OK);
    }
    return 0;
}

static int c_detokenize(int a, es_status *s) {
    int64_t ids[3] = {1, 2, 3};
    size_t size = 0;
    char buf[2];
    switch (a) {
    case 0: *s = es_detokenize(NULL, ids, 3, NULL, &size); EXPECT(*s == ES_ERR_INVALID_ARGUMENT);
    case 1: *s = es_detokenize(pipe_(), ids, 3, NULL, NULL); EXPECT(*s == ES_ERR_INVALID_ARGUMENT);
    case 2: *s = es_detokenize(pipe_(), NULL, 3, NULL, &size); EXPECT(*s == ES_ERR_INVALID_ARGUMENT);
    case 3: ids[1] = -1; break;
    case 4: ids[1] = INT64_MAX; break;
    case 5: ids[1] = INT64_MIN; break;
    case 6: ids[1] = 1 << 30; break;
    case 7: *s = es_detokenize(pipe_(), ids, 0, NULL, &size); EXPECT(*s == ES_OK && size == 1);
    case 8: size = 1; *s = es_detokenize(pipe_(), ids, 3, buf, &size); EXPECT(*s == ES_ERR_BUFFER_TOO_SMALL || (*s == ES_OK && size <= 1));
    case 9: *s = es_detokenize(pipe_(), ids, 3, NULL, &size); EXPECT(*s == ES_OK && size >= 1);
    }
    *s = es_detokenize(pipe_(), ids, 3, NULL, &size);
    EXPECT(*s == ES_ERR_INVALID_ARGUMENT);
}

static int c_freed(int a, es_status *s) {
    es_pipeline *p = load("none");
    if (!p) { *s = (es_status)-4; take_msg(); return 0; }
    es_generation_config c = small_config(2);
    size_t n = 0;
    *s = es_pipeline_free(p);
    if (*s != ES_OK) return 0;
    switch (a) {
    case 0: *s = es_pipeline_free(p); EXPECT(*s == ES_ERR_INVALID_ARGUMENT);  /* double free */
    case 1: *s = gen(p, "x", &c, NULL, NULL); EXPECT(*s == ES_ERR_INVALID_ARGUMENT);
    case 2: *s = es_tokenize(p, "x", NULL, &n); EXPECT(*s == ES_ERR_INVALID_ARGUMENT);
    case 3: *s = es_cancel(p); EXPECT(*s == ES_ERR_INVALID_ARGUMENT);
    case 4: *s = ES_OK; EXPECT(es_pipeline_context_length(p) == 0 && strcmp(es_pipeline_info(p), "") == 0);
    case 5: *s = es_pipeline_free(NULL); EXPECT(*s == ES_OK);
    }
    return 0;
}

static int c_defaults(int a, es_status *s) {
    (void)a;
    es_pipeline_params p = es_pipeline_default_params();
    es_generation_config c = es_generation_default_config();
    *s = ES_OK;
    EXPECT(p.verify == 1 && p.fixed_shapes == -1 && strcmp(p.device, "CPU") == 0 && c.max_new_tokens == 128 && c.k == -1);
}

static int c_cycles(int a, es_status *s) {
    (void)a;
    for (int i = 0; i < 2; ++i) {
        es_pipeline *p = load("none");
        if (!p) { *s = (es_status)-4; take_msg(); return 0; }
        es_generation_config c = small_config(2);
        *s = gen(p, "x", &c, NULL, NULL);
        if (*s != ES_OK || es_pipeline_free(p) != ES_OK) return 0;
    }
    return 1;
}

#define N(x) (int)(sizeof(x) / sizeof(*(x)))

static const struct { const char *name; int (*run)(int, es_status *); int n; } kGroups[] = {
    {"abi_version", c_abi_version, 1}, {"version", c_version, 1}, {"available_devices", c_devices, 3},
    {"last_error", c_last_error, 1}, {"defaults", c_defaults, 1}, {"load_args", c_load_args, 6},
    {"load_params", c_load_params, 17}, {"load_ok", c_load_ok, 2}, {"getters", c_getters, 4},
    {"generate_args", c_generate_args, 5}, {"config", c_config, 28}, {"prompt", c_prompts, 9},
    {"callback_answer", c_callback, 4}, {"huge_max_new_tokens", c_huge_max_new, 2}, {"reentrant", c_reentry, 5},
    {"threads", c_threads, 7}, {"cancel", c_cancel, 3}, {"results", c_results, 10}, {"tokenize", c_tokenize, 8},
    {"detokenize", c_detokenize, 10}, {"freed_pipeline", c_freed, 6}, {"load_free_cycles", c_cycles, 1},
};

int main(int argc, char **argv) {
    int total = 0;
    for (int g = 0; g < N(kGroups); ++g) total += kGroups[g].n;
    if (argc > 1 && strcmp(argv[1], "--count") == 0) {
        printf("%d\n", total);
        return 0;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: abi_misuse BUNDLE [FIRST] [LAST] | --count\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    g_bundle = argv[1];
    int first = argc > 2 ? atoi(argv[2]) : 0, last = argc > 3 ? atoi(argv[3]) : total - 1;
    snprintf(g_dir, sizeof g_dir, "%s/edgespec-abi-misuse-%d", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", g_dir);
    if (system(cmd) != 0) return 2;
    int failed = 0, index = 0;
    for (int g = 0; g < N(kGroups); ++g)
        for (int a = 0; a < kGroups[g].n; ++a, ++index) {
            if (index < first || index > last) continue;
            printf("start %d %s/%d\n", index, kGroups[g].name, a);
            es_status st = ES_OK;
            double t0 = now_ms();
            int ok = kGroups[g].run(a, &st);
            int one_line = st == ES_OK ? 1 : take_msg();
            if (st == ES_OK) g_msg[0] = 0;
            if (!one_line) ok = 0;
            failed += !ok;
            printf("case %d %s/%d: %s status=%d ms=%.1f msg=%s\n", index, kGroups[g].name, a, ok ? "ok" : "FAIL", (int)st,
                   now_ms() - t0, g_msg);
        }
    es_pipeline_free(g_pipe);
    es_pipeline_free(g_plain);
    snprintf(cmd, sizeof cmd, "rmdir '%s'", g_dir);
    if (system(cmd) != 0) return 2;
    return failed ? 1 : 0;
}
