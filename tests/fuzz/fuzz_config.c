/* The service's configuration: the JSON config file, option values from any source, and
 * the number parser behind every integer and size option (config/config.c, options.c).
 * The first byte picks the mode; the whole input is then also parsed as a number:
 *   '@'  the rest is "NAME=VALUE" lines (a line without '=' sets NULL), each given to
 *        vp_config_set;
 *   '-'  the rest is command-line words, one a line, given to vp_config_apply_args;
 *   '$'  the rest is "VPRM_NAME=VALUE" lines, the environment of vp_config_apply_env;
 *   else the whole input is a JSON config file for vp_config_apply_json_text.
 * Seeds: config JSON files (as README.md and tests/unit/test_config.c write them) and
 * one of each other mode, written by hand.
 * Promises:
 *  - a failure is a 400 (BAD_REQUEST) with a message, from the source functions and from
 *    vp_config_validate;
 *  - after any sequence of sets, failed ones included, every option holds a value of
 *    its declared range (INT/SIZE within [min, max], ENUM one of its choices, a string
 *    NULL or non-empty): a refused value changes nothing;
 *  - a config vp_config_validate accepts also meets its cross-field rules (model and
 *    host set, an api_key of 8+ printable characters, max_image_bytes and
 *    max_text_bytes within max_body_bytes);
 *  - vp_config_parse_number agrees with a reference parser of the documented syntax
 *    ([+-]digits, with allow_suffix an optional K/M/G/T, binary, then optional "B" or
 *    "iB", case-insensitive): same acceptance, same value, and a value past 64 bits is
 *    refused, never wrapped;
 *  - nothing leaks (vp_config_free; ASan's leak check). */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "config/options.h"
#include "tests/fuzz/fuzz.h"

/* The documented number syntax, in 128 bits: 0 and *out, or -1 when it is not one. */
static int ref_parse_number(const char *s, bool allow_suffix, __int128 *out)
{
    const char *p = s;
    bool neg = false;
    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    if (!isdigit((unsigned char)*p))
        return -1;
    __int128 v = 0;
    for (; isdigit((unsigned char)*p); p++) {
        v = v * 10 + (*p - '0');
        if (v > ((__int128)1 << 80))
            v = (__int128)1 << 80; /* far past 64 bits already: saturate */
    }
    int shift = 0;
    if (*p && allow_suffix) {
        const char *units = "KMGT";
        const char *u = strchr(units, toupper((unsigned char)*p));
        if (!u)
            return -1;
        shift = 10 * (int)(u - units + 1);
        p++;
        if (!strcasecmp(p, "B") || !strcasecmp(p, "iB"))
            p += strlen(p);
    }
    if (*p)
        return -1;
    v <<= shift;
    *out = neg ? -v : v;
    return 0;
}

static void check_number(const char *s)
{
    for (int suffix = 0; suffix < 2; suffix++) {
        long long got = 0;
        __int128 want = 0;
        int rc = vp_config_parse_number(s, suffix, &got);
        int ref = ref_parse_number(s, suffix, &want);
        bool fits = ref == 0 && want >= INT64_MIN && want <= INT64_MAX;
        FUZZ_REQUIRE(rc == 0 || rc == -1, "parse_number returned %d", rc);
        FUZZ_REQUIRE((rc == 0) == fits, "'%s' (suffixes %s): parse_number %s, the syntax says %s",
                     s, suffix ? "on" : "off", rc ? "refuses" : "accepts",
                     ref ? "not a number" : fits ? "a 64-bit number" : "out of range");
        FUZZ_REQUIRE(rc || got == (long long)want, "'%s': %lld, expected %lld", s, got,
                     (long long)want);
    }
}

/* Every option within what options.c declares for it. */
static void check_ranges(const vp_config *c)
{
    for (size_t i = 0; i < vp_n_options; i++) {
        const vp_option *o = &vp_options[i];
        const void *f = (const char *)c + o->offset;
        switch (o->type) {
        case VP_OPT_INT: {
            int v = *(const int *)f;
            FUZZ_REQUIRE(v >= o->min && v <= o->max, "%s = %d outside [%lld, %lld]", o->name, v,
                         o->min, o->max);
            break;
        }
        case VP_OPT_SIZE: {
            size_t v = *(const size_t *)f;
            if (o->choices && v == VP_SIZE_AUTO)
                break; /* "auto" */
            FUZZ_REQUIRE(v >= (unsigned long long)o->min && v <= (unsigned long long)o->max,
                         "%s = %zu outside [%lld, %lld]", o->name, v, o->min, o->max);
            break;
        }
        case VP_OPT_ENUM: {
            const char *v = *(char *const *)f;
            FUZZ_REQUIRE(v && *v, "%s unset", o->name);
            size_t n = strlen(v);
            const char *hit = strstr(o->choices, v);
            bool ok = false;
            for (; hit && !ok; hit = strstr(hit + 1, v))
                ok = (hit == o->choices || hit[-1] == '|') && (hit[n] == '|' || !hit[n]);
            FUZZ_REQUIRE(ok, "%s = '%s' is not one of %s", o->name, v, o->choices);
            break;
        }
        case VP_OPT_STR: {
            const char *v = *(char *const *)f;
            FUZZ_REQUIRE(!v || *v, "%s is an empty string instead of unset", o->name);
            break;
        }
        case VP_OPT_BOOL: break; /* only ever assigned true or false */
        }
    }
}

static void check_refusal(const vp_error *err, const char *what)
{
    FUZZ_REQUIRE_ERROR(*err);
    FUZZ_REQUIRE(err->kind == VP_ERR_BAD_REQUEST, "%s: error kind %d: %s", what, (int)err->kind,
                 err->message);
}

/* Splits text (len bytes, no NUL inside) into malloc'd NUL-terminated lines. */
static char **split_lines(const char *text, size_t len, size_t *n)
{
    size_t cap = 1;
    for (size_t i = 0; i < len; i++)
        cap += text[i] == '\n';
    char **lines = calloc(cap, sizeof *lines);
    *n = 0;
    if (!lines)
        return NULL;
    for (size_t start = 0; start <= len && *n < cap;) {
        const char *nl = memchr(text + start, '\n', len - start);
        size_t end = nl ? (size_t)(nl - text) : len;
        char *line = malloc(end - start + 1);
        if (!line)
            break;
        memcpy(line, text + start, end - start);
        line[end - start] = '\0';
        lines[(*n)++] = line;
        start = end + 1;
    }
    return lines;
}

static void free_lines(char **lines, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
}

static void run_sets(vp_config *c, const char *text, size_t len)
{
    size_t n;
    char **lines = split_lines(text, len, &n);
    for (size_t i = 0; lines && i < n; i++) {
        char *eq = strchr(lines[i], '=');
        if (eq)
            *eq = '\0';
        vp_error err = {0};
        if (vp_config_set(c, lines[i], eq ? eq + 1 : NULL, "fuzz", &err))
            check_refusal(&err, "vp_config_set");
        check_ranges(c);
    }
    free_lines(lines, n);
}

static void run_args(vp_config *c, const char *text, size_t len)
{
    size_t n;
    char **lines = split_lines(text, len, &n);
    if (!lines)
        return;
    /* argv[0] is the command name; argv[argc] is NULL as main's is */
    char **argv = calloc(n + 2, sizeof *argv);
    if (argv) {
        argv[0] = "serve";
        memcpy(argv + 1, lines, n * sizeof *lines);
        bool help = false;
        vp_error err = {0};
        if (vp_config_apply_args(c, (int)n + 1, argv, &help, &err))
            check_refusal(&err, "vp_config_apply_args");
        free(argv);
    }
    free_lines(lines, n);
}

static void run_env(vp_config *c, const char *text, size_t len)
{
    size_t n;
    char **lines = split_lines(text, len, &n);
    if (!lines)
        return;
    char **env = calloc(n + 1, sizeof *env);
    if (env) {
        memcpy(env, lines, n * sizeof *lines);
        vp_error err = {0};
        if (vp_config_apply_env(c, env, &err))
            check_refusal(&err, "vp_config_apply_env");
        free(env);
    }
    free_lines(lines, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The option texts are C strings: a NUL ends one (as it would in argv or environ). */
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    check_number(text);

    vp_config c;
    vp_config_default(&c);
    check_ranges(&c);
    const char *rest = text + 1;
    size_t rest_len = size ? strnlen(rest, size - 1) : 0;
    vp_error err = {0};
    switch (size ? text[0] : 0) {
    case '@': run_sets(&c, rest, rest_len); break;
    case '-': run_args(&c, rest, rest_len); break;
    case '$': run_env(&c, rest, rest_len); break;
    default:
        if (vp_config_apply_json_text(&c, text, size, "fuzz", &err))
            check_refusal(&err, "vp_config_apply_json_text");
        break;
    }
    check_ranges(&c);

    vp_error verr = {0};
    if (vp_config_validate(&c, &verr)) {
        check_refusal(&verr, "vp_config_validate");
    } else {
        FUZZ_REQUIRE(c.model_dir && *c.model_dir && c.host && *c.host, "model or host unset");
        FUZZ_REQUIRE(c.max_image_bytes <= c.max_body_bytes && c.max_text_bytes <= c.max_body_bytes,
                     "image %zu / text %zu bytes over a body of %zu", c.max_image_bytes,
                     c.max_text_bytes, c.max_body_bytes);
        if (c.api_key) {
            FUZZ_REQUIRE(strlen(c.api_key) >= 8, "api_key of %zu characters", strlen(c.api_key));
            for (const char *p = c.api_key; *p; p++)
                FUZZ_REQUIRE((unsigned char)*p > ' ' && *p != 0x7f, "api_key byte %02x",
                             (unsigned char)*p);
        }
    }
    vp_config_free(&c);
    free(text);
    return 0;
}
