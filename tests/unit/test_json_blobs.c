/* vp_json_loadb against jansson's own json_loadb (the oracle): the same tree (json_equal)
 * or the same error (text, line, column) on hand-built bodies with long strings where
 * the fast path applies, where it must not (keys, escapes, non-ASCII, control bytes), a
 * request spelling the placeholder itself, broken bodies, and thousands of random
 * mutations of those. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* the source itself, to also ask whether the fast path was taken (load_with_blobs) */
#include "proto/json_blobs.c"
#include "tests/unit/check.h"

#define FLAGS (JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL)

typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static void put(sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void puts_(sbuf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* n characters of base64 (a long plain string) */
static void put_b64(sbuf *b, size_t n, uint32_t seed)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        put(b, &al[seed >> 26], 1);
    }
}

static int fast_path_used; /* mutated bodies the fast path parsed */

/* Both parsers on one body: equal trees, or both refuse with the same error. */
static void same(const char *what, const char *body, size_t len)
{
    json_error_t e1, e2;
    memset(&e1, 0, sizeof e1);
    memset(&e2, 0, sizeof e2);
    json_t *want = json_loadb(body, len, FLAGS, &e1);
    json_t *got = vp_json_loadb(body, len, FLAGS, &e2);
    CHECK_MSG(!strcmp(e1.source, e2.source) && e1.position == e2.position,
              "%s: error record %s @%d, jansson's %s @%d", what, e2.source, e2.position,
              e1.source, e1.position);
    if (!want) {
        CHECK_MSG(!got, "%s: accepted a body jansson refuses (%s)", what, e1.text);
        CHECK_MSG(!strcmp(e1.text, e2.text) && e1.line == e2.line && e1.column == e2.column &&
                      e1.position == e2.position,
                  "%s: error \"%s\" at %d:%d, jansson says \"%s\" at %d:%d", what, e2.text,
                  e2.line, e2.column, e1.text, e1.line, e1.column);
    } else {
        CHECK_MSG(got && json_equal(got, want), "%s: tree differs from jansson's", what);
    }
    json_decref(want);
    json_decref(got);
}

static void test_hand_built(void)
{
    sbuf b = {0};
    /* a score request with a data URL: the fast path's own case */
    puts_(&b, "{\"question\": \"What is 2+2?\", \"image\": \"data:image/png;base64,");
    put_b64(&b, 300000, 1);
    puts_(&b, "\", \"responses\": [\"step 1\\n\\nstep 2\"]}");
    same("data URL", b.p, b.n);
    {
        json_t *fast = load_with_blobs(b.p, b.n, FLAGS);
        CHECK_MSG(fast != NULL, "the fast path was not taken for a data URL");
        json_decref(fast);
        json_error_t e;
        json_t *r = vp_json_loadb(b.p, b.n, FLAGS, &e);
        const char *img = json_string_value(json_object_get(r, "image"));
        CHECK(img && json_string_length(json_object_get(r, "image")) == 300000 + 22 &&
              !memcmp(img, "data:image/png;base64,", 22));
        json_decref(r);
    }
    /* several images in an array, one exactly at the threshold, one just under it */
    b.n = 0;
    puts_(&b, "{\"images\": [\"");
    put_b64(&b, VP_JSON_BLOB_MIN, 2);
    puts_(&b, "\" , \"");
    put_b64(&b, VP_JSON_BLOB_MIN - 1, 3);
    puts_(&b, "\",\n\t\"");
    put_b64(&b, 70000, 4);
    puts_(&b, "\"], \"n\": [1, 2.5, true, null, {}]}");
    same("array of images", b.p, b.n);
    {
        blob *found = NULL;
        size_t n = 0;
        CHECK(find_blobs(b.p, b.n, &found, &n) == 0 && n == 2); /* not the one under the threshold */
        free(found);
    }
    /* a long key (never replaced), a long value with an escape, with non-ASCII, with a
     * raw control byte (invalid JSON), a long string at the top level */
    b.n = 0;
    puts_(&b, "{\"");
    put_b64(&b, 9000, 5);
    puts_(&b, "\" : \"x\", \"esc\": \"");
    put_b64(&b, 9000, 6);
    puts_(&b, "\\n\", \"utf8\": \"");
    put_b64(&b, 9000, 7);
    puts_(&b, "\xc3\xa9\"}");
    same("long key, escape, non-ASCII", b.p, b.n);
    b.n = 0;
    puts_(&b, "{\"ctl\": \"");
    put_b64(&b, 9000, 8);
    puts_(&b, "\x01\"}");
    same("raw control byte", b.p, b.n);
    b.n = 0;
    puts_(&b, "\"");
    put_b64(&b, 9000, 9);
    puts_(&b, "\"");
    same("top-level string", b.p, b.n);
    /* escapes that stand for printable ASCII keep the fast path (PHP writes \/, .NET
     * \u002B); any other escape leaves the string to jansson */
    const char *escapes[] = {"\\/", "\\u002B", "\\u002b", "\\\\", "\\\"", "\\u0041",
                             "\\n", "\\u00e9", "\\u0000", "\\ud83d\\ude00", "\\u001f",
                             "\\u007F", "\\t"};
    for (size_t x = 0; x < sizeof escapes / sizeof escapes[0]; x++) {
        b.n = 0;
        puts_(&b, "{\"image\": \"data:image/png;base64,");
        for (int part = 0; part < 60; part++) {
            put_b64(&b, 76, 30 + (uint32_t)part);
            puts_(&b, escapes[x]);
        }
        puts_(&b, "\"}");
        char what[64];
        snprintf(what, sizeof what, "blob with escape %zu (%s)", x, escapes[x]);
        same(what, b.p, b.n);
        json_t *fast = load_with_blobs(b.p, b.n, FLAGS);
        CHECK_MSG(!fast == (x >= 6), "%s: fast path %s", what, fast ? "taken" : "not taken");
        json_decref(fast);
    }
    /* a request that spells a placeholder: alone, beside the blob it names, beside none */
    const char *marks[] = {"\\u0000vprm\\u00000", "\\u0000vprm\\u00001", "\\u0000vprm\\u000000",
                           "\\u0000vprm\\u0000"};
    for (size_t m = 0; m < sizeof marks / sizeof marks[0]; m++) {
        for (int before = 0; before < 2; before++) {
            b.n = 0;
            puts_(&b, "{");
            if (before)
                puts_(&b, "\"q\": \""), puts_(&b, marks[m]), puts_(&b, "\", ");
            puts_(&b, "\"image\": \"");
            put_b64(&b, 20000, 10);
            puts_(&b, "\"");
            if (!before)
                puts_(&b, ", \"q\": \""), puts_(&b, marks[m]), puts_(&b, "\"");
            puts_(&b, "}");
            char what[64];
            snprintf(what, sizeof what, "placeholder %zu spelled %s", m, before ? "before" : "after");
            same(what, b.p, b.n);
            json_t *fast = load_with_blobs(b.p, b.n, FLAGS);
            CHECK_MSG(!fast == (m == 0), "%s: fast path %s", what,
                      fast ? "taken though the request spells blob 0's placeholder"
                           : "refused for a placeholder that names no blob");
            json_decref(fast);
        }
    }
    /* broken bodies: errors keep the original line and column */
    const char *tails[] = {"\"}", "\"", "\" x}", "\"}}", "\", \"image\": 1}", "\", }"};
    for (size_t t = 0; t < sizeof tails / sizeof tails[0]; t++) {
        b.n = 0;
        puts_(&b, "{\n \"image\": \"");
        put_b64(&b, 10000, 11);
        puts_(&b, tails[t]);
        char what[64];
        snprintf(what, sizeof what, "broken tail %zu", t);
        same(what, b.p, b.n);
    }
    /* duplicate keys around a blob are refused the same way */
    b.n = 0;
    puts_(&b, "{\"a\": \"");
    put_b64(&b, 10000, 12);
    puts_(&b, "\", \"a\": \"\\u0000vprm\\u00000\"}");
    same("duplicate key over a blob", b.p, b.n);
    free(b.p);
}

/* Random edits of a body with two blobs: quotes, backslashes, colons, brackets and
 * placeholder text inserted, bytes deleted or flipped. */
static void test_mutations(void)
{
    sbuf base = {0};
    puts_(&base, "{\"question\": \"q\", \"images\": [\"");
    put_b64(&base, 5000, 21);
    puts_(&base, "\", \"");
    put_b64(&base, 6000, 22);
    puts_(&base, "\"], \"k\": {\"x\": [1, \"y\"]}}");
    static const char *inserts[] = {"\"", "\\", ":", "]", "}", ",", "\\u0000vprm\\u00001", "\\\"",
                                    "\x01", "\xff", " ", "{\"a\":\"", "\"b\"", "\\/",
                                    "\\u002B", "\\u00", "\\u12G4"};
    uint32_t seed = 12345;
    sbuf b = {0};
    for (int round = 0; round < 3000; round++) {
        b.n = 0;
        put(&b, base.p, base.n);
        int edits = 1 + round % 4;
        for (int e = 0; e < edits; e++) {
            seed = seed * 1664525u + 1013904223u;
            size_t at = (seed >> 8) % (b.n + 1);
            seed = seed * 1664525u + 1013904223u;
            int kind = (int)(seed >> 28) % 3;
            if (kind == 0) { /* insert */
                const char *ins = inserts[(seed >> 8) % (sizeof inserts / sizeof inserts[0])];
                size_t l = strlen(ins);
                sbuf t = {0};
                put(&t, b.p, at);
                put(&t, ins, l);
                put(&t, b.p + at, b.n - at);
                free(b.p);
                b = t;
            } else if (kind == 1 && b.n) { /* delete */
                size_t l = 1 + (seed >> 4) % 3;
                at = at >= b.n ? b.n - 1 : at;
                l = at + l > b.n ? b.n - at : l;
                memmove(b.p + at, b.p + at + l, b.n - at - l);
                b.n -= l;
            } else if (b.n) { /* flip */
                at = at >= b.n ? b.n - 1 : at;
                b.p[at] = "\"\\:,{}[] a0\x7f"[(seed >> 12) % 12];
            }
        }
        char what[48];
        snprintf(what, sizeof what, "mutation %d", round);
        same(what, b.p, b.n);
        json_t *fast = load_with_blobs(b.p, b.n, FLAGS);
        fast_path_used += fast != NULL;
        json_decref(fast);
    }
    /* the comparisons above went through the fast path often enough to mean something */
    CHECK_MSG(fast_path_used > 300, "the fast path served only %d of the mutated bodies",
              fast_path_used);
    printf("mutations: %d of 3000 bodies parsed by the fast path, the rest the plain way\n",
           fast_path_used);
    free(b.p);
    free(base.p);
}

/* Values of a parsed tree, object keys included. */
static size_t count_values(const json_t *v)
{
    size_t n = 1;
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x)
            n += 1 + count_values(x);
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
            n += count_values(x);
    }
    return n;
}

/* vp_json_value_bound: exact on bodies without empty containers, never below the count. */
static void test_value_bound(void)
{
    const char *exact[] = {"[1,2,3]", "{\"a\":\"b\\\"c,:[{\"}", "{\"q\": [{\"x\": null}, true, \"\\\\\"]}",
                           "\"only, a: string[\"", "42", "[\"x\\\\\",1]"};
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++) {
        json_error_t je;
        json_t *j = json_loads(exact[i], JSON_DECODE_ANY, &je);
        CHECK_MSG(j && vp_json_value_bound(exact[i], strlen(exact[i])) == count_values(j),
                  "%s: bound %zu, values %zu", exact[i], vp_json_value_bound(exact[i], strlen(exact[i])),
                  j ? count_values(j) : 0);
        json_decref(j);
    }
    /* an empty array or object counts one more than it holds; the bound stays above */
    const char *empty = "{\"a\": [], \"b\": {}}";
    CHECK(vp_json_value_bound(empty, strlen(empty)) >= 5);
    /* a string cut after its backslash: nothing read past the end */
    CHECK(vp_json_value_bound("[\"ab\\", 5) == 2);
    /* 30 million tiny values in 60 MB are found without parsing */
    size_t n = 3000000;
    char *big = malloc(2 * n + 2);
    big[0] = '[';
    for (size_t i = 0; i < n; i++)
        memcpy(big + 1 + 2 * i, "0,", 2);
    big[2 * n] = ']';
    CHECK(vp_json_value_bound(big, 2 * n + 1) == n + 1);
    free(big);
}

int main(void)
{
    test_hand_built();
    test_value_bound();
    test_mutations();
    return check_summary("test_json_blobs");
}
