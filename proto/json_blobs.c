/* JSON parsing with long plain strings kept out of jansson's lexer (json_blobs.h). */
#include "proto/json_blobs.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/util/json_alloc.h"

typedef struct blob {
    size_t at, len; /* the string's content: body bytes [at, at + len) */
    bool escaped;   /* holds escapes of printable ASCII (\/ from PHP, \u002B from .NET) */
} blob;

static const char MARK_TEXT[] = "\\u0000vprm\\u0000"; /* as written into the JSON text */
#define MARK_TEXT_LEN (sizeof MARK_TEXT - 1)
static const char MARK_VALUE[6] = {0, 'v', 'p', 'r', 'm', 0}; /* as jansson decodes it */

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                          : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The printable ASCII character (0x20..0x7e) that the escape at s (after the backslash,
 * n bytes left) stands for, and its length in *used; -1 for any other escape. */
static int ascii_escape(const char *s, size_t n, size_t *used)
{
    if (n >= 1 && (s[0] == '/' || s[0] == '\\' || s[0] == '"')) {
        *used = 1;
        return (unsigned char)s[0];
    }
    if (n < 5 || s[0] != 'u')
        return -1;
    int v = 0;
    for (int i = 1; i <= 4; i++) {
        int d = hex_digit(s[i]);
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    *used = 5;
    return v >= 0x20 && v <= 0x7e ? v : -1;
}

/* A blob's value with its escapes decoded (each one printable ASCII, checked when it was
 * found) into out, which holds len bytes; the decoded length. */
static size_t unescape(const char *s, size_t len, char *out)
{
    size_t o = 0, used = 0;
    for (size_t i = 0; i < len;) {
        if (s[i] != '\\') {
            out[o++] = s[i++];
            continue;
        }
        out[o++] = (char)ascii_escape(s + i + 1, len - i - 1, &used);
        i += 1 + used;
    }
    return o;
}

/* The long plain string values of body, in order. Outside strings a '"' can only open
 * one (in valid JSON; invalid bodies fail in jansson and are parsed again anyway).
 * 0, or -1 when out of memory. */
static int find_blobs(const char *body, size_t len, blob **out, size_t *n)
{
    size_t cap = 0, i = 0;
    *out = NULL;
    *n = 0;
    while (i < len) {
        const char *q = memchr(body + i, '"', len - i);
        if (!q)
            break;
        size_t start = (size_t)(q - body) + 1, j = start, used = 0;
        bool plain = true, escaped = false;
        while (j < len) {
            unsigned char c = (unsigned char)body[j];
            if (c == '"')
                break;
            if (c == '\\') {
                if (ascii_escape(body + j + 1, len - j - 1, &used) >= 0) {
                    escaped = true;
                    j += 1 + used;
                } else { /* other escapes: jansson decodes them */
                    plain = false;
                    j += 2;
                }
                continue;
            }
            plain &= c >= 0x20 && c <= 0x7e;
            j++;
        }
        if (j >= len)
            break; /* unterminated: jansson says so */
        size_t k = j + 1;
        while (k < len && is_ws(body[k]))
            k++;
        bool key = k < len && body[k] == ':';
        if (plain && !key && j - start >= VP_JSON_BLOB_MIN) {
            if (*n == cap) {
                cap = cap ? 2 * cap : 4;
                blob *grown = realloc(*out, cap * sizeof *grown);
                if (!grown)
                    return -1;
                *out = grown;
            }
            (*out)[(*n)++] = (blob){start, j - start, escaped};
        }
        i = j + 1;
    }
    return 0;
}

/* body with each blob's content replaced by its placeholder; NULL when out of memory. */
static char *substitute(const char *body, size_t len, const blob *b, size_t n, size_t *out_len)
{
    size_t total = len;
    for (size_t i = 0; i < n; i++)
        total = total - b[i].len + MARK_TEXT_LEN + 20;
    char *s = malloc(total + 1);
    if (!s)
        return NULL;
    size_t from = 0, at = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(s + at, body + from, b[i].at - from);
        at += b[i].at - from;
        memcpy(s + at, MARK_TEXT, MARK_TEXT_LEN);
        at += MARK_TEXT_LEN;
        at += (size_t)snprintf(s + at, 21, "%zu", i);
        from = b[i].at + b[i].len;
    }
    memcpy(s + at, body + from, len - from);
    *out_len = at + len - from;
    return s;
}

/* Index of the placeholder v holds, or -1 when it is not one of ours. */
static long long placeholder_index(const json_t *v, size_t n)
{
    size_t l = json_string_length(v);
    const char *s = json_string_value(v);
    if (l <= sizeof MARK_VALUE || l > sizeof MARK_VALUE + 19 || memcmp(s, MARK_VALUE, sizeof MARK_VALUE))
        return -1;
    if (s[sizeof MARK_VALUE] == '0' && l > sizeof MARK_VALUE + 1)
        return -1; /* ours have no leading zeros */
    unsigned long long idx = 0;
    for (size_t i = sizeof MARK_VALUE; i < l; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        idx = idx * 10 + (unsigned)(s[i] - '0');
    }
    return idx < n ? (long long)idx : -1;
}

/* Puts the blobs back; -1 when a placeholder shows up twice (the request itself spelled
 * one) or a copy fails. */
static int restore(json_t *v, const char *body, const blob *b, size_t n, unsigned char *seen)
{
    if (json_is_object(v)) {
        const char *key;
        json_t *x;
        json_object_foreach(v, key, x)
            if (restore(x, body, b, n, seen))
                return -1;
        return 0;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
            if (restore(x, body, b, n, seen))
                return -1;
        return 0;
    }
    if (!json_is_string(v))
        return 0;
    long long idx = placeholder_index(v, n);
    if (idx < 0)
        return 0;
    if (seen[idx])
        return -1;
    seen[idx] = 1;
    if (!b[idx].escaped)
        return json_string_setn_nocheck(v, body + b[idx].at, b[idx].len) ? -1 : 0;
    char *plain = malloc(b[idx].len ? b[idx].len : 1);
    if (!plain)
        return -1;
    int rc = json_string_setn_nocheck(v, plain, unescape(body + b[idx].at, b[idx].len, plain));
    free(plain);
    return rc ? -1 : 0;
}

/* The fast path; NULL when it does not apply or did not work out (the caller then
 * parses the plain way). */
static json_t *load_with_blobs(const char *body, size_t len, size_t flags)
{
    blob *b = NULL;
    size_t n = 0;
    if (find_blobs(body, len, &b, &n) || n == 0) {
        free(b);
        return NULL;
    }
    size_t sub_len = 0;
    char *sub = substitute(body, len, b, n, &sub_len);
    unsigned char *seen = calloc(n, 1);
    json_t *root = NULL;
    json_error_t jerr;
    if (sub && seen)
        root = vp_json_parse(sub, sub_len, flags, &jerr);
    bool ok = root && restore(root, body, b, n, seen) == 0;
    for (size_t i = 0; ok && i < n; i++)
        ok = seen[i];
    if (!ok) {
        json_decref(root);
        root = NULL;
    }
    free(sub);
    free(seen);
    free(b);
    return root;
}

size_t vp_json_value_bound(const char *body, size_t len)
{
    size_t n = 1;
    for (size_t i = 0; i < len; i++) {
        char c = body[i];
        if (c == '"') { /* to the closing quote (one not escaped), by memchr: a base64 image
                         * is megabytes of string */
            size_t from = i + 1;
            for (;;) {
                const char *q = memchr(body + from, '"', len - from);
                if (!q)
                    return n;
                size_t at = (size_t)(q - body), bs = 0;
                while (at - bs > i + 1 && body[at - 1 - bs] == '\\')
                    bs++;
                from = at + 1;
                if (bs % 2 == 0)
                    break;
            }
            i = from - 1;
            continue;
        }
        n += c == ',' || c == ':' || c == '[' || c == '{';
    }
    return n;
}

json_t *vp_json_loadb(const char *body, size_t len, size_t flags, json_error_t *err)
{
    /* the placeholders need NUL in strings; without duplicate keys refused, a dropped
     * placeholder could let a request's own copy of one stand in for it */
    if ((flags & JSON_ALLOW_NUL) && (flags & JSON_REJECT_DUPLICATES) &&
        !(flags & JSON_DISABLE_EOF_CHECK) && len >= VP_JSON_BLOB_MIN) {
        json_t *root = load_with_blobs(body, len, flags);
        if (root) {
            if (err) { /* what json_loadb leaves after reading the whole buffer */
                memset(err, 0, sizeof *err);
                err->line = err->column = -1;
                err->position = (int)(len < (size_t)INT_MAX ? len : (size_t)INT_MAX);
                snprintf(err->source, sizeof err->source, "<buffer>");
            }
            return root;
        }
    }
    return vp_json_parse(body, len, flags, err);
}
