/* Allocation failures along the request path, injected. This test links with
 * -Wl,--wrap=malloc,calloc,realloc,strdup,strndup,aligned_alloc (the Makefile's rule for
 * test_alloc_*), so any allocation the library makes can be failed: the n-th alone, a
 * burst from it (past jansson's reserve), or it and every later one; jansson's allocations
 * come through vp_json_alloc_install's allocator, which calls malloc. Each flow runs once
 * to count its allocations and keep its result, then once per n in each mode, and must
 * each time give the same result or fail as out of memory (VP_ERR_NOMEM: a 500, never a
 * 400 or 422 that blames the client), leaving nothing behind (LeakSanitizer at exit) and
 * the engine serving. */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "engine/image/image.h"
#include "engine/model/mkmodel.h"
#include "engine/util/json_alloc.h"
#include "proto/base64.h"
#include "proto/json_blobs.h"
#include "proto/response.h"
#include "server/tls_clients.h"
#include "tests/unit/check.h"
#include "tests/unit/engine_test_util.h"
#include "tests/unit/tls_test_util.h"

/* ------------------------------------------------------------------ injection */
void *__real_malloc(size_t);
void *__real_calloc(size_t, size_t);
void *__real_realloc(void *, size_t);
char *__real_strdup(const char *);
char *__real_strndup(const char *, size_t);
void *__real_aligned_alloc(size_t, size_t);

/* Which allocations fail from the n-th on: it alone; a burst longer than jansson's
 * reserve (vp_json_alloc_install's retries), so that a jansson builder returns NULL,
 * except inside a parse (jansson's lexer can abort on a NULL followed by successes:
 * vp_json_parse is wrapped to say when one runs); or it and every later one. */
typedef enum { FAIL_ONE, FAIL_BURST, FAIL_ALL } fail_mode;
static const char *const mode_name[] = {"alone", "in a burst", "and every later"};
#define BURST (VP_JSON_RESERVE_BLOCKS + 1)

static bool g_armed, g_in_parse;
static fail_mode g_mode;
static size_t g_count, g_fail_at; /* allocations seen while armed; 0 = fail none */

static bool fail_now(void)
{
    if (!g_armed)
        return false;
    size_t n = ++g_count;
    if (!g_fail_at || n < g_fail_at)
        return false;
    return n == g_fail_at || g_mode == FAIL_ALL ||
           (g_mode == FAIL_BURST && !g_in_parse && n < g_fail_at + BURST);
}

json_t *__real_vp_json_parse(const char *text, size_t len, size_t flags, json_error_t *e);
json_t *__wrap_vp_json_parse(const char *text, size_t len, size_t flags, json_error_t *e)
{
    g_in_parse = true;
    json_t *root = __real_vp_json_parse(text, len, flags, e);
    g_in_parse = false;
    return root;
}

void *__wrap_malloc(size_t n) { return fail_now() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t a, size_t b) { return fail_now() ? NULL : __real_calloc(a, b); }
void *__wrap_realloc(void *p, size_t n) { return fail_now() ? NULL : __real_realloc(p, n); }
char *__wrap_strdup(const char *s) { return fail_now() ? NULL : __real_strdup(s); }
char *__wrap_strndup(const char *s, size_t n) { return fail_now() ? NULL : __real_strndup(s, n); }
void *__wrap_aligned_alloc(size_t a, size_t n)
{
    return fail_now() ? NULL : __real_aligned_alloc(a, n);
}

static void arm(size_t fail_at, fail_mode mode)
{
    g_count = 0;
    g_fail_at = fail_at;
    g_mode = mode;
    g_armed = true;
}

static size_t disarm(void)
{
    g_armed = false;
    return g_count;
}

/* A flow: one armed attempt. Returns 0 and its result as text in *out (malloc'd), or -1
 * with err filled. */
typedef int (*flow_fn)(const void *arg, char **out, vp_error *err);

typedef struct outcomes {
    size_t same, failed;
} outcomes;

/* Runs fn unarmed for the baseline, then failing each allocation in turn (every
 * stride-th: a flow of thousands), both modes. */
static outcomes sweep_every(const char *name, flow_fn fn, const void *arg, size_t stride)
{
    outcomes o = {0, 0};
    char *want = NULL;
    vp_error err = {0};
    arm(0, FAIL_ONE);
    int rc = fn(arg, &want, &err);
    size_t total = disarm();
    CHECK_MSG(rc == 0 && want, "%s: baseline failed: %s", name, err.message);
    if (rc || !want)
        return o;
    for (int mode = FAIL_ONE; mode <= FAIL_ALL; mode++)
        for (size_t n = 1; n <= total; n += stride) {
            char *got = NULL;
            memset(&err, 0, sizeof err);
            arm(n, (fail_mode)mode);
            rc = fn(arg, &got, &err);
            disarm();
            if (rc == 0) {
                CHECK_MSG(got && !strcmp(got, want), "%s: allocation %zu (%s) failed, the "
                          "result differs:\n  want %.300s\n  got  %.300s", name, n,
                          mode_name[mode], want, got ? got : "(null)");
                o.same++;
            } else {
                CHECK_MSG(err.kind == VP_ERR_NOMEM, "%s: allocation %zu (%s) failed, the "
                          "error is kind %d: %s", name, n, mode_name[mode], (int)err.kind,
                          err.message);
                o.failed++;
            }
            free(got);
        }
    printf("%-28s %5zu allocations: %5zu runs same result, %5zu out of memory\n", name,
           total, o.same, o.failed);
    free(want);
    return o;
}

static outcomes sweep(const char *name, flow_fn fn, const void *arg)
{
    return sweep_every(name, fn, arg, 1);
}

/* ------------------------------------------------------------------ flows */
static const char JSON_DOC[] =
    "{\"question\": \"What is the area of the shaded triangle, in square centimetres?\","
    " \"numbers\": [1, -2.5e3, 3.25, 18446744073, 0.1], \"nested\": {\"a\": [true, false, null,"
    " {\"deep\": \"a string longer than sixteen bytes \\u00e9\\u4e2d\\ud83d\\ude00 \\\"q\\\"\"}]},"
    " \"responses\": [\"Step 1: the base is 6 cm.\\n\\nStep 2: the height is 4 cm.\", "
    "\"Step 1: 12.\"], \"k1\": 1, \"k2\": 2, \"k3\": 3, \"k4\": 4, \"k5\": 5, \"k6\": 6}";

static int flow_json_parse(const void *arg, char **out, vp_error *err)
{
    const char *doc = arg;
    json_error_t je;
    json_t *root = vp_json_parse(doc, strlen(doc), JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return vp_fail(err, vp_json_oom(&je) ? VP_ERR_NOMEM : VP_ERR_BAD_REQUEST, "",
                       "%s", je.text);
    /* written unarmed, sorted: the tree itself is what is compared */
    bool armed = g_armed;
    g_armed = false;
    *out = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    g_armed = armed;
    json_decref(root);
    return 0;
}

static int flow_json_dump(const void *arg, char **out, vp_error *err)
{
    *out = vp_json_dump(arg, JSON_COMPACT);
    return *out ? 0 : vp_fail(err, VP_ERR_NOMEM, "", "out of memory");
}

/* The parsed request, as text: every field the engine reads. */
static char *request_text(const vp_score_request *r)
{
    bool armed = g_armed;
    g_armed = false;
    size_t cap = 4096 + r->question.len;
    for (size_t i = 0; i < r->n_images; i++)
        cap += 2 * r->images[i].len;
    for (size_t i = 0; i < r->n_responses; i++)
        for (size_t k = 0; k < r->responses[i].n_steps; k++)
            cap += r->responses[i].steps[k].len + 8;
    char *s = malloc(cap);
    size_t at = (size_t)snprintf(s, cap, "q=%s agg=%d tiles=%d steps=%d rs=%d rl=%d pri=%d/%d "
                                 "unknown=%s images=%zu:", r->question.s, (int)r->aggregation,
                                 r->max_tiles, r->max_steps, r->return_steps, r->return_logits,
                                 (int)r->priority, r->priority_given, r->unknown_fields,
                                 r->n_images);
    for (size_t i = 0; i < r->n_images; i++)
        for (size_t b = 0; b < r->images[i].len; b++)
            at += (size_t)snprintf(s + at, cap - at, "%02x", r->images[i].data[b]);
    for (size_t i = 0; i < r->n_responses; i++) {
        at += (size_t)snprintf(s + at, cap - at, " | r%zu:", i);
        for (size_t k = 0; k < r->responses[i].n_steps; k++)
            at += (size_t)snprintf(s + at, cap - at, "[%s]", r->responses[i].steps[k].s);
    }
    g_armed = armed;
    return s;
}

static int flow_request(const void *arg, char **out, vp_error *err)
{
    const char *body = arg;
    vp_request_limits lim;
    vp_request_limits_default(&lim);
    vp_score_request req;
    if (vp_request_parse(body, strlen(body), &lim, &req, err))
        return -1;
    *out = request_text(&req);
    vp_request_free(&req);
    return 0;
}

static int flow_decode(const void *arg, char **out, vp_error *err)
{
    const char *path = arg;
    bool armed = g_armed;
    g_armed = false;
    size_t len = 0;
    uint8_t *bytes = NULL;
    FILE *f = fopen(path, "rb");
    if (f) {
        bytes = malloc(1 << 20);
        len = fread(bytes, 1, 1 << 20, f);
        fclose(f);
    }
    g_armed = armed;
    if (!len) {
        free(bytes);
        return vp_fail(err, VP_ERR_IO, "", "cannot read %s", path);
    }
    vp_rgb_image img = {0};
    int rc = vp_image_decode_rgb(bytes, len, NULL, &img, err);
    free(bytes);
    if (rc)
        return -1;
    g_armed = false;
    size_t n = (size_t)img.width * img.height * 3;
    *out = malloc(2 * n + 32);
    size_t at = (size_t)sprintf(*out, "%ux%u:", img.width, img.height);
    for (size_t i = 0; i < n; i++)
        at += (size_t)sprintf(*out + at, "%02x", img.pixels[i]);
    g_armed = armed;
    vp_rgb_image_free(&img);
    return 0;
}

static int flow_config(const void *arg, char **out, vp_error *err)
{
    char *argv[] = {"serve", "--config", (char *)arg, "--model", "/tmp/no-model", "--threads",
                    "1", "--max-responses=9", "--log-level", "error", NULL};
    char *env[] = {"VPRM_MAX_TILES=4", "VPRM_SYSTEM_MESSAGE=env message", NULL};
    vp_config c;
    if (vp_config_default(&c)) {
        vp_config_free(&c);
        return vp_fail(err, VP_ERR_NOMEM, "", "out of memory");
    }
    FILE *quiet = fopen("/dev/null", "w");
    int rc = vp_config_load(&c, 10, argv, env, quiet, err);
    fclose(quiet);
    if (rc == 0) {
        bool armed = g_armed;
        g_armed = false;
        size_t len = 0;
        FILE *m = open_memstream(out, &len);
        vp_config_dump(&c, m);
        fclose(m);
        g_armed = armed;
    }
    vp_config_free(&c);
    return rc ? -1 : 0;
}

/* A file's bytes as text (FNV-1a, 16 hex digits), or "-" when it is missing. */
static void file_digest(const char *dir, const char *name, char *out, size_t cap)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    uint64_t h = 1469598103934665603ull;
    int c;
    while (f && (c = getc(f)) != EOF)
        h = (h ^ (uint64_t)c) * 1099511628211ull;
    snprintf(out, cap, "%s=%016llx ", name, f ? (unsigned long long)h : 0ull);
    if (f)
        fclose(f);
}

/* vprm mkmodel: tiny shapes in 2 shards; what it writes, by every file's digest. */
static int flow_mkmodel(const void *arg, char **out, vp_error *err)
{
    const char *dir = arg;
    bool armed = g_armed;
    g_armed = false;
    vp_mkmodel_opts mo = {.out_dir = dir, .tokenizer_dir = "engine/assets/tiny_tokenizer",
                          .seed = 3, .dtype = VP_DT_BF16, .threads = 1, .shards = 2,
                          .force = true};
    int rc = vp_mkmodel_preset("tiny", &mo.cfg, err);
    g_armed = armed;
    vp_mkmodel_result mr;
    if (rc || vp_mkmodel_write(&mo, &mr, err))
        return -1;
    g_armed = false;
    static const char *const files[] = {"config.json", "model.safetensors.index.json",
                                        "model-00001-of-00002.safetensors",
                                        "model-00002-of-00002.safetensors", "tokenizer.model",
                                        "tokenizer_config.json"};
    char text[1024] = "";
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        file_digest(dir, files[i], text + strlen(text), sizeof text - strlen(text));
    *out = strdup(text);
    g_armed = armed;
    return 0;
}

/* A client certificate's check (mutual TLS): the name it gives its client. Out of memory
 * must not read as "no common name" (another client's name, without its grants). */
typedef struct cert_case {
    const vp_client_cas *cas;
    gnutls_datum_t der;
} cert_case;

static int flow_client_name(const void *arg, char **out, vp_error *err)
{
    const cert_case *c = arg;
    char name[VP_CLIENT_NAME_MAX + 1];
    if (vp_client_cas_verify(c->cas, &c->der, 1, name, sizeof name, err))
        return -1;
    bool armed = g_armed;
    g_armed = false;
    *out = strdup(name);
    g_armed = armed;
    return 0;
}

/* The client certificate authorities file. */
static int flow_client_cas(const void *arg, char **out, vp_error *err)
{
    vp_client_cas *cas = NULL;
    if (vp_client_cas_load(arg, &cas, err))
        return -1;
    bool armed = g_armed;
    g_armed = false;
    char text[64];
    snprintf(text, sizeof text, "%zu authorities", vp_client_cas_count(cas));
    *out = strdup(text);
    g_armed = armed;
    vp_client_cas_free(cas);
    return 0;
}

typedef struct engine_case {
    vp_engine *engine;
    const char *body;
    vp_job *job; /* prepared and run unarmed: the answers' flows */
} engine_case;

static int flow_prepare(const void *arg, char **out, vp_error *err)
{
    const engine_case *c = arg;
    vp_request_limits lim;
    vp_request_limits_default(&lim);
    vp_score_request req;
    bool armed = g_armed;
    g_armed = false;
    int rc = vp_request_parse(c->body, strlen(c->body), &lim, &req, err);
    g_armed = armed;
    if (rc)
        return -1;
    vp_job *job = NULL;
    rc = vp_engine_prepare(c->engine, &req, &job, err);
    g_armed = false;
    vp_request_free(&req);
    if (!rc) {
        json_t *t = vp_response_tokenize_json("tok_1", "tiny", vp_engine_tokenizer(c->engine),
                                              job, err);
        *out = t ? json_dumps(t, JSON_COMPACT) : NULL;
        json_decref(t);
        vp_job_free(job);
    }
    g_armed = armed;
    return rc ? -1 : 0;
}

/* A run's logits as text (bit patterns: they must be identical). */
static char *logits_text(const vp_score_result *r)
{
    size_t cap = 64;
    for (size_t i = 0; i < r->n_responses; i++)
        cap += r->responses[i].n_steps * 2 * 12;
    char *s = malloc(cap);
    size_t at = 0;
    for (size_t i = 0; i < r->n_responses; i++)
        for (size_t k = 0; k < 2 * r->responses[i].n_steps; k++) {
            uint32_t bits;
            memcpy(&bits, &r->responses[i].step_logits[k], 4);
            at += (size_t)snprintf(s + at, cap - at, "%08x ", bits);
        }
    return s;
}

static int flow_run(const void *arg, char **out, vp_error *err)
{
    const engine_case *c = arg;
    vp_request_limits lim;
    vp_request_limits_default(&lim);
    vp_score_request req;
    vp_job *job = NULL;
    bool armed = g_armed;
    g_armed = false;
    int rc = vp_request_parse(c->body, strlen(c->body), &lim, &req, err);
    if (!rc) {
        rc = vp_engine_prepare(c->engine, &req, &job, err);
        vp_request_free(&req);
    }
    g_armed = armed;
    if (rc)
        return -1;
    rc = vp_engine_run(c->engine, &job, 1, err);
    g_armed = false;
    if (!rc)
        *out = logits_text(vp_job_result(job));
    vp_job_free(job);
    g_armed = armed;
    return rc ? -1 : 0;
}

static int flow_answers(const void *arg, char **out, vp_error *err)
{
    const engine_case *c = arg;
    vp_score_json_opts so = {.id = "scr_0123", .model_name = "tiny", .return_steps = true,
                             .return_logits = true, .unknown_fields = "colour, responses[1].zz",
                             .note = "a note"};
    size_t l1 = 0, l2 = 0, l3 = 0;
    char *score = vp_response_dump(vp_response_score_json(vp_job_result(c->job), &so, err),
                                   &l1, err);
    char *tok = score ? vp_response_dump(vp_response_tokenize_json(
                                             "tok_1", "tiny", vp_engine_tokenizer(c->engine),
                                             c->job, err), &l2, err)
                      : NULL;
    vp_error e = {.kind = VP_ERR_BAD_REQUEST};
    snprintf(e.param, sizeof e.param, "responses[2]");
    snprintf(e.message, sizeof e.message, "a \"quoted\" message \xc3\xa9");
    /* a fixed text when the message cannot be written, NULL when not even that */
    char *error = vp_response_error_text(&e, &l3);
    bool armed = g_armed;
    g_armed = false;
    int rc = -1;
    if (error && !strstr(error, "\"error\""))
        rc = vp_fail(err, VP_ERR_INTERNAL, "", "the error text is not an error: %s", error);
    else if (!error)
        rc = vp_fail(err, VP_ERR_NOMEM, "", "out of memory");
    else if (score && tok) {
        size_t n = l1 + l2 + 8;
        *out = malloc(n);
        snprintf(*out, n, "%s\n%s", score, tok);
        rc = 0;
    }
    g_armed = armed;
    free(score);
    free(tok);
    free(error);
    return rc;
}

/* ------------------------------------------------------------------ main */
static char *data_url(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    char *b64 = vp_base64_encode(buf, n);
    char *url = malloc(strlen(b64) + 32);
    sprintf(url, "data:image/png;base64,%s", b64);
    free(b64);
    return url;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* each flow's line before a sanitizer's report */
    vp_json_alloc_install();

    /* jansson through vp_json_parse / vp_json_dump */
    outcomes o = sweep("json parse", flow_json_parse, JSON_DOC);
    CHECK(o.failed > 0);
    json_t *tree = json_loads(JSON_DOC, 0, NULL);
    CHECK(tree != NULL);
    o = sweep("json dump", flow_json_dump, tree);
    CHECK(o.failed > 0);
    json_decref(tree);

    /* a request with an image long enough for the parser's long-string path */
    char *url = data_url("tests/data/geometry.png");
    char long_step[VP_JSON_BLOB_MIN + 100]; /* plain text: the parser's long-string path */
    for (size_t i = 0; i + 1 < sizeof long_step; i++)
        long_step[i] = (char)('a' + i % 26);
    long_step[sizeof long_step - 1] = 0;
    const char *const responses[] = {"Step 1: the base is 6.\\n\\nStep 2: so 12 \\u00e9.",
                                     long_step, "Step 1: the base is 6.\\n\\nStep 2: so 12 \\u00e9."};
    CHECK(url != NULL);
    char *body = test_request_json(url, "What is the area?", 2, responses, 3);
    o = sweep("request parse", flow_request, body);
    CHECK(o.failed > 0);

    static const char *const images[] = {
        "tests/data/geometry.png",
        "tests/fuzz/corpus/fuzz_image/seed_png_rgba16.png",
        "tests/fuzz/corpus/fuzz_image/seed_png_la16.png",
        "tests/fuzz/corpus/fuzz_image/seed_png_grey16.png",
        "tests/fuzz/corpus/fuzz_image/seed_png_interlaced_pal.png",
        "tests/fuzz/corpus/fuzz_image/seed_jpg_progressive.jpg",
        "tests/fuzz/corpus/fuzz_image/seed_jpg_420.jpg",
        "tests/data/arith_progressive.jpg",
        "tests/fuzz/corpus/fuzz_image/seed_gif_animated.gif",
        "tests/fuzz/corpus/fuzz_image/seed_bmp_4bit.bmp",
    };
    for (size_t i = 0; i < sizeof images / sizeof images[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "decode %s", strrchr(images[i], '/') + 1);
        o = sweep(name, flow_decode, images[i]);
        CHECK_MSG(o.failed > 0, "%s", images[i]);
    }

    char cfg[] = "/tmp/vprm-test-alloc-XXXXXX";
    int fd = mkstemp(cfg);
    CHECK(fd >= 0);
    static const char cfg_text[] =
        "{\"host\": \"127.0.0.1\", \"port\": 0, \"max_queue\": 7, \"log_level\": \"warn\","
        " \"system_message\": \"You are a judge.\", \"api_key\": \"abcdefgh12345\","
        " \"max_body_bytes\": \"64M\", \"allow_image_urls\": true, \"log_format\": \"json\"}";
    CHECK(fd >= 0 && write(fd, cfg_text, sizeof cfg_text - 1) == (ssize_t)(sizeof cfg_text - 1));
    if (fd >= 0)
        close(fd);
    o = sweep("config load", flow_config, cfg);
    CHECK(o.failed > 0);
    unlink(cfg);

    /* client certificates */
    vp_error err = {0};
    char tls_dir[] = "/tmp/vprm-test-alloc-tls-XXXXXX";
    CHECK(mkdtemp(tls_dir) != NULL);
    cert root = make("Test Root CA", NULL, CA, 1), client = make("rl-trainer-1", &root, CLIENT, 2);
    const cert *roots[1] = {&root};
    const char *ca_path = pem_file_in(tls_dir, "ca.pem", roots, 1, "");
    vp_client_cas *cas = NULL;
    CHECK_MSG(vp_client_cas_load(ca_path, &cas, &err) == 0, "%s", err.message);
    o = sweep("client CAs file", flow_client_cas, ca_path);
    CHECK(o.failed > 0);
    cert_case cc = {.cas = cas, .der = client.der};
    o = sweep("client certificate's name", flow_client_name, &cc);
    CHECK(o.failed > 0);
    vp_client_cas_free(cas);
    drop(&root);
    drop(&client);
    CHECK(test_remove_dir(tls_dir) == 0);

    /* mkmodel: a shape or a tensor left out of what it writes was still valid JSON */
    char mk_dir[] = "/tmp/vprm-test-alloc-mkmodel-XXXXXX";
    CHECK(mkdtemp(mk_dir) != NULL);
    o = sweep_every("mkmodel (every 4th)", flow_mkmodel, mk_dir, 4);
    CHECK(o.failed > 0);
    CHECK(test_remove_dir(mk_dir) == 0);

    /* the engine: preparing, running and answering one request on a tiny model */
    char dir[] = "/tmp/vprm-test-alloc-model-XXXXXX";
    vp_engine_options opt;
    const char *const short_responses[] = {"Step 1: the base is 6.\\n\\nStep 2: so 12.",
                                           "One step only."};
    char *engine_body = test_request_json(url, "What is the area?", 2, short_responses, 2);
    engine_case c = {.body = engine_body};
    if (test_tiny_model(dir, 7, &opt) == 0) {
        opt.threads = 1;
        opt.image_threads = 1;
        opt.prefix_cache_bytes = 0;
        opt.image_cache_bytes = 0;
        CHECK_MSG(vp_engine_open(&opt, &c.engine, &err) == 0, "%s", err.message);
    }
    if (c.engine) {
        o = sweep("engine prepare", flow_prepare, &c);
        CHECK(o.failed > 0);
        o = sweep("engine run", flow_run, &c);
        CHECK(o.failed > 0);
        vp_request_limits lim;
        vp_request_limits_default(&lim);
        vp_score_request req;
        CHECK(vp_request_parse(engine_body, strlen(engine_body), &lim, &req, &err) == 0 &&
              vp_engine_prepare(c.engine, &req, &c.job, &err) == 0 &&
              vp_engine_run(c.engine, &c.job, 1, &err) == 0);
        vp_request_free(&req);
        o = sweep("score and tokenize answers", flow_answers, &c);
        CHECK(o.failed > 0 && o.same > 0);
        vp_job_free(c.job);
        vp_engine_close(c.engine);
    }
    CHECK(test_remove_dir(dir) == 0);
    free(body);
    free(engine_body);
    free(url);
    return check_summary("test_alloc_failures");
}
