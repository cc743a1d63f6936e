#include "server/cli/cli_request.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "engine/util/file.h"

#define MAX_REQUEST_FILE (1u << 30)

static void usage(FILE *f, const char *cmd, const char *summary)
{
    fprintf(f,
            "usage: vprm %s --model DIR REQUEST.json [--image FILE]... [--backend cpu|cuda] "
            "[--threads N] [--random-weights SEED]\n\n%s\n\n"
            "  --model DIR      model folder (config.json, *.safetensors, tokenizer files)\n"
            "  REQUEST.json     a request body as in API.md (POST /v1/score); '-' reads stdin\n"
            "  --image FILE     image file (PNG/JPEG/GIF/BMP); repeat for several; replaces\n"
            "                   the request's \"image\"/\"images\"\n"
            "  --backend NAME   cpu (default) or cuda (when built with CUDA=1)\n"
            "  --threads N      CPU threads (default: all cores)\n"
            "  --random-weights SEED  no checkpoint: the backend draws `vprm mkmodel --seed SEED`\n"
            "                   weights itself (cuda; DIR needs config.json and the tokenizer,\n"
            "                   e.g. from vprm mkmodel --scale 8b --config-only)\n",
            cmd, summary);
}

int cli_int_option(const char *cmd, const char *opt, const char *v, long long lo, long long hi,
                   long long *out)
{
    if (vp_config_parse_number(v, false, out) || *out < lo || *out > hi) {
        fprintf(stderr, "vprm %s: %s wants an integer in %lld..%lld, not '%s'\n", cmd, opt, lo, hi,
                v);
        return -1;
    }
    return 0;
}

int cli_write_answer(const char *text, vp_error *err)
{
    if (puts(text) == EOF || fflush(stdout) != 0) {
        vp_fail(err, VP_ERR_IO, NULL, "cannot write the answer to stdout: %s", strerror(errno));
        return 1;
    }
    return 0;
}

int cli_request_parse_args(int argc, char **argv, const char *cmd, const char *summary,
                           cli_request_args *a)
{
    memset(a, 0, sizeof *a);
    a->backend = "cpu";
    a->random_weights = -1;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        int has_value = i + 1 < argc;
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            usage(stdout, cmd, summary);
            return 1;
        } else if (!strcmp(s, "--model") && has_value) {
            a->model_dir = argv[++i];
        } else if (!strcmp(s, "--image") && has_value) {
            if (a->n_images == (int)(sizeof a->images / sizeof a->images[0])) {
                fprintf(stderr, "vprm %s: too many --image options\n", cmd);
                return -1;
            }
            a->images[a->n_images++] = argv[++i];
        } else if (!strcmp(s, "--backend") && has_value) {
            a->backend = argv[++i];
            if (strcmp(a->backend, "cpu") && strcmp(a->backend, "cuda")) {
                fprintf(stderr, "vprm %s: --backend takes cpu or cuda, not '%s'\n", cmd, a->backend);
                return -1;
            }
        } else if (!strcmp(s, "--threads") && has_value) {
            long long n;
            if (cli_int_option(cmd, s, argv[++i], 0, 1024, &n))
                return -1;
            a->threads = (int)n;
        } else if (!strcmp(s, "--random-weights") && has_value) {
            if (vp_config_parse_number(argv[++i], false, &a->random_weights) ||
                a->random_weights < 0 || a->random_weights > 2147483647) {
                fprintf(stderr, "vprm %s: --random-weights wants a seed in 0..2147483647, not '%s'\n",
                        cmd, argv[i]);
                return -1;
            }
        } else if (s[0] == '-' && s[1] != 0) {
            fprintf(stderr, "vprm %s: unknown option or missing value: %s\n", cmd, s);
            usage(stderr, cmd, summary);
            return -1;
        } else if (!a->request_path) {
            a->request_path = s;
        } else {
            fprintf(stderr, "vprm %s: unexpected argument: %s\n", cmd, s);
            return -1;
        }
    }
    if (!a->model_dir || !*a->model_dir || !a->request_path || !*a->request_path) {
        fprintf(stderr, "vprm %s: --model DIR and REQUEST.json are required (not empty)\n", cmd);
        usage(stderr, cmd, summary);
        return -1;
    }
    return 0;
}

static int read_stdin(uint8_t **out, size_t *len, vp_error *err)
{
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, stdin);
        if (n < cap)
            break;
        if (cap >= MAX_REQUEST_FILE) {
            free(buf);
            return vp_fail(err, VP_ERR_TOO_LARGE, NULL, "request on stdin is over %u bytes",
                           MAX_REQUEST_FILE);
        }
        uint8_t *nb = realloc(buf, cap * 2);
        if (!nb)
            free(buf);
        buf = nb;
        cap *= 2;
    }
    if (!buf)
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory reading stdin");
    if (ferror(stdin)) { /* a closed or unreadable stdin is not an empty request */
        free(buf);
        return vp_fail(err, VP_ERR_IO, NULL, "cannot read the request from stdin: %s",
                       strerror(errno));
    }
    if (n == 0) {
        free(buf);
        return vp_fail(err, VP_ERR_BAD_REQUEST, NULL, "stdin held no request (empty)");
    }
    *out = buf;
    *len = n;
    return 0;
}

static int replace_images(const cli_request_args *a, vp_score_request *req, vp_error *err);

int cli_request_load(const cli_request_args *a, vp_score_request *req, vp_error *err)
{
    uint8_t *body = NULL;
    size_t len = 0;
    if (!strcmp(a->request_path, "-") ? read_stdin(&body, &len, err)
                                      : vp_read_file(a->request_path, MAX_REQUEST_FILE, &body, &len, err))
        return -1;
    vp_request_limits lim;
    vp_request_limits_default(&lim);
    lim.max_responses = lim.max_steps = lim.max_images = 0; /* the command line trusts its user */
    lim.max_image_bytes = lim.max_text_bytes = 0;
    lim.max_tiles = 0;
    int rc = vp_request_parse((const char *)body, len, &lim, req, err);
    free(body);
    if (rc)
        return -1;
    if (a->n_images == 0)
        return 0;
    if (replace_images(a, req, err)) {
        vp_request_free(req);
        return -1;
    }
    return 0;
}

/* The --image files replace the request's images. */
static int replace_images(const cli_request_args *a, vp_score_request *req, vp_error *err)
{
    for (size_t i = 0; i < req->n_images; i++) {
        free(req->images[i].data);
        free(req->images[i].url);
    }
    free(req->images);
    req->n_images = 0;
    req->images = calloc((size_t)a->n_images, sizeof *req->images);
    if (!req->images)
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
    for (int i = 0; i < a->n_images; i++) {
        if (vp_read_file(a->images[i], 0, &req->images[i].data, &req->images[i].len, err))
            return -1;
        req->images[i].kind = VP_IMAGE_BYTES;
        req->n_images++;
    }
    return 0;
}

int cli_session_open(const cli_request_args *a, const char *backend, cli_session *s)
{
    memset(s, 0, sizeof *s);
    if (cli_request_load(a, &s->req, &s->err))
        return -1;
    s->have_req = 1;
    vp_engine_options opt;
    vp_engine_options_default(&opt);
    opt.model_dir = a->model_dir;
    opt.backend = "none";
    opt.threads = a->threads;
    opt.random_weights = a->random_weights;
    /* the command line trusts its user: no request limits, and the pass budget is sized
     * to this request (prepared once without a backend to measure it) */
    opt.max_request_tokens = 0;
    opt.max_batch_tokens = 0;
    opt.max_batch_tiles = 0;
    if (vp_engine_open(&opt, &s->engine, &s->err) ||
        vp_engine_prepare(s->engine, &s->req, &s->job, &s->err))
        return -1;
    if (!strcmp(backend, "none"))
        return 0;
    opt.max_batch_tokens = vp_job_tokens(s->job);
    opt.max_batch_tiles = vp_job_tiles(s->job) ? vp_job_tiles(s->job) : 1;
    opt.backend = backend;
    vp_job_free(s->job);
    vp_engine_close(s->engine);
    s->job = NULL;
    s->engine = NULL;
    if (vp_engine_open(&opt, &s->engine, &s->err) ||
        vp_engine_prepare(s->engine, &s->req, &s->job, &s->err))
        return -1;
    return 0;
}

void cli_session_close(cli_session *s, const char *cmd, int failed)
{
    if (failed)
        fprintf(stderr, "vprm %s: %s%s%s\n", cmd, s->err.param, s->err.param[0] ? ": " : "",
                s->err.message);
    vp_job_free(s->job);
    vp_engine_close(s->engine);
    if (s->have_req)
        vp_request_free(&s->req);
    memset(s, 0, sizeof *s);
}
