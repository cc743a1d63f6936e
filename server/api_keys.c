/* API keys from --api-key and --api-keys-file (api_keys.h). */
#include <gnutls/crypto.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/util/file.h"
#include "server/api_keys.h"

/* Keys are kept as their SHA-256 only: the process holds no key's bytes after loading,
 * and a check compares 32 bytes a key whatever the token's length (a long token costs
 * one hash, not a pass over every key). */
#define DIGEST 32

typedef struct api_key {
    uint8_t digest[DIGEST];
    char name[VP_API_KEY_NAME_MAX + 1];
    vp_priority max_priority; /* the most its requests may ask for */
    size_t max_queued;        /* 0 = no bound */
    unsigned weight;          /* its share of the passes (1 = a client without a key) */
    size_t line; /* 0 = the api_key option */
    bool named;  /* its name was given (not "lineN") */
} api_key;

/* A "cert:NAME OPTION..." line: the grants of the client its certificate names. */
typedef struct cert_grant {
    char name[VP_API_KEY_NAME_MAX + 1];
    vp_api_key_grant g;
    size_t line;
} cert_grant;

struct vp_api_keys {
    api_key *keys;
    size_t n, cap;
    cert_grant *certs;
    size_t n_certs, cap_certs;
};

void vp_api_keys_free(vp_api_keys *k)
{
    if (!k)
        return;
    if (k->keys)
        explicit_bzero(k->keys, k->cap * sizeof *k->keys);
    free(k->keys);
    free(k->certs);
    free(k);
}

size_t vp_api_keys_count(const vp_api_keys *k) { return k ? k->n : 0; }
size_t vp_api_keys_cert_grants(const vp_api_keys *k) { return k ? k->n_certs : 0; }

bool vp_api_keys_cert_grant(const vp_api_keys *k, const char *name, vp_api_key_grant *out)
{
    for (size_t i = 0; k && i < k->n_certs; i++)
        if (!strcmp(k->certs[i].name, name)) {
            *out = k->certs[i].g;
            return true;
        }
    return false;
}

bool vp_api_keys_match(const vp_api_keys *k, const char *token, size_t len,
                       vp_api_key_grant *out)
{
    uint8_t d[DIGEST];
    if (!k || gnutls_hash_fast(GNUTLS_DIG_SHA256, token, len, d) < 0)
        return false;
    size_t found = SIZE_MAX;
    for (size_t i = 0; i < k->n; i++) {
        unsigned char diff = 0;
        for (size_t j = 0; j < DIGEST; j++)
            diff |= (unsigned char)(d[j] ^ k->keys[i].digest[j]);
        /* keys are distinct: at most one equals the token, so no branch on a match */
        size_t hit = (size_t)0 - (size_t)(diff == 0);
        found = (found & ~hit) | (i & hit);
    }
    explicit_bzero(d, sizeof d);
    if (found == SIZE_MAX)
        return false;
    if (out) {
        const api_key *e = &k->keys[found];
        memcpy(out->name, e->name, sizeof out->name);
        out->max_priority = e->max_priority;
        out->max_queued = e->max_queued;
        out->weight = e->weight;
    }
    return true;
}

/* "line 7", or "option api_key" */
static const char *where(const api_key *e, char *buf, size_t cap)
{
    if (e->line)
        snprintf(buf, cap, "line %zu", e->line);
    else
        snprintf(buf, cap, "option api_key");
    return buf;
}

/* A line's options (api_keys.h) */
typedef struct key_options {
    vp_priority max_priority;
    size_t max_queued;
    unsigned weight;
    bool priority_seen, queued_seen, weight_seen;
} key_options;

static int add_key(vp_api_keys *k, const char *file, const char *key, size_t len,
                   const char *name, size_t name_len, const key_options *o, size_t line,
                   vp_error *err)
{
    const char *param = line ? "api_keys_file" : "api_key";
    api_key e = {.line = line, .max_priority = o->max_priority, .max_queued = o->max_queued,
                 .weight = o->weight};
    char at[4096 + 48]; /* "FILE, line N" or "option api_key": what every message starts with */
    if (line)
        snprintf(at, sizeof at, "%s, line %zu", file, line);
    else
        snprintf(at, sizeof at, "option api_key");
    if (len < VP_API_KEY_MIN || len > VP_API_KEY_MAX)
        return vp_fail(err, VP_ERR_BAD_REQUEST, param, "%s: the key has %zu bytes; %d to %d "
                       "are allowed", at, len, VP_API_KEY_MIN, VP_API_KEY_MAX);
    for (size_t i = 0; i < len; i++) /* the byte's value unsaid: it is part of a secret */
        if ((unsigned char)key[i] <= ' ' || (unsigned char)key[i] >= 0x7f)
            return vp_fail(err, VP_ERR_BAD_REQUEST, param,
                           "%s: the byte at offset %zu of the key is not visible ASCII (a "
                           "space, a control character or non-ASCII)", at, i);
    if (name_len > VP_API_KEY_NAME_MAX)
        return vp_fail(err, VP_ERR_BAD_REQUEST, param, "%s: the name has %zu bytes; at most "
                       "%d are allowed", at, name_len, VP_API_KEY_NAME_MAX);
    for (size_t i = 0; i < name_len; i++) {
        char c = name[i];
        bool fine = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    strchr(".-_@:", c);
        if (!fine || !c)
            return vp_fail(err, VP_ERR_BAD_REQUEST, param,
                           "%s: byte 0x%02x at offset %zu of the name; a name holds "
                           "letters, digits and \".-_@:\" only", at,
                           (unsigned char)c, i);
    }
    if (name_len >= 5 && !memcmp(name, "cert:", 5)) /* tls_clients.h: cert:CN */
        return vp_fail(err, VP_ERR_BAD_REQUEST, param,
                       "%s: a name may not start with \"cert:\", the prefix of clients named by "
                       "their certificate", at);
    memcpy(e.name, name, name_len);
    e.name[name_len] = 0;
    if (k->n == VP_API_KEYS_MAX)
        return vp_fail(err, VP_ERR_BAD_REQUEST, param, "%s: more than %d keys", at,
                       VP_API_KEYS_MAX);
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, key, len, e.digest) < 0)
        return vp_fail(err, VP_ERR_INTERNAL, param, "%s: GnuTLS cannot hash the key", at);
    for (size_t i = 0; i < k->n; i++) {
        char other[48];
        if (!memcmp(k->keys[i].digest, e.digest, DIGEST))
            return vp_fail(err, VP_ERR_BAD_REQUEST, param, "%s repeats the key of %s",
                           at, where(&k->keys[i], other, sizeof other));
        if (!strcmp(k->keys[i].name, e.name)) /* unquoted: it may be a key, misplaced */
            return vp_fail(err, VP_ERR_BAD_REQUEST, param, "%s repeats the name of %s", at,
                           where(&k->keys[i], other, sizeof other));
    }
    if (k->n == k->cap) {
        size_t cap = k->cap ? 2 * k->cap : 8;
        api_key *keys = realloc(k->keys, cap * sizeof *keys);
        if (!keys)
            return vp_fail(err, VP_ERR_NOMEM, param, "out of memory for the API keys");
        k->keys = keys;
        k->cap = cap;
    }
    k->keys[k->n++] = e;
    explicit_bzero(e.digest, sizeof e.digest);
    return 0;
}

static bool blank(char c) { return c == ' ' || c == '\t'; }

/* Whether f[0..len) is "<prefix>" followed by at least one byte: an option's form. */
static bool option_form(const char *f, size_t len, const char *prefix)
{
    size_t pl = strlen(prefix);
    return len > pl && !memcmp(f, prefix, pl);
}

static const char OPT_PRIORITY[] = "max_priority=", OPT_QUEUED[] = "max_queued=",
                  OPT_WEIGHT[] = "weight=";

/* The whole number after f's prefix of pl bytes, in 1..max and at most digits digits:
 * 0 and *v, or -1. */
static int option_number(const char *f, size_t len, size_t pl, int digits, size_t max,
                         size_t *v)
{
    size_t x = 0, i = pl;
    for (; i < len && i - pl < (size_t)digits && f[i] >= '0' && f[i] <= '9'; i++)
        x = x * 10 + (size_t)(f[i] - '0');
    if (i < len || x < 1 || x > max)
        return -1;
    *v = x;
    return 0;
}

/* A line's option field (the third and later): "max_priority=high|normal|low",
 * "max_queued=N" or "weight=N". Its text is never quoted in a message: a line holding
 * keys by mistake would put them in the log. */
static int parse_option(const char *f, size_t len, key_options *o, const char *path,
                        size_t line, size_t field, vp_error *err)
{
    size_t pl = sizeof OPT_PRIORITY - 1;
    if (option_form(f, len, OPT_PRIORITY)) {
        if (o->priority_seen)
            return vp_fail(err, VP_ERR_BAD_REQUEST, "api_keys_file",
                           "%s, line %zu: max_priority given twice", path, line);
        static const char *const names[] = {"high", "normal", "low"};
        for (int p = VP_PRIORITY_HIGH; p <= VP_PRIORITY_LOW; p++)
            if (len - pl == strlen(names[p]) && !memcmp(f + pl, names[p], len - pl)) {
                o->max_priority = (vp_priority)p;
                o->priority_seen = true;
                return 0;
            }
        return vp_fail(err, VP_ERR_BAD_REQUEST, "api_keys_file",
                       "%s, line %zu: max_priority must be high, normal or low", path, line);
    }
    if (option_form(f, len, OPT_QUEUED)) {
        if (o->queued_seen)
            return vp_fail(err, VP_ERR_BAD_REQUEST, "api_keys_file",
                           "%s, line %zu: max_queued given twice", path, line);
        if (option_number(f, len, sizeof OPT_QUEUED - 1, 9, VP_API_KEY_MAX_QUEUED,
                          &o->max_queued))
            return vp_fail(err, VP_ERR_BAD_REQUEST, "api_keys_file",
                           "%s, line %zu: max_queued must be a whole number of jobs from 1 to "
                           "%d, in at most 9 digits", path, line, VP_API_KEY_MAX_QUEUED);
        o->queued_seen = true;
        return 0;
    }
    if (option_form(f, len, OPT_WEIGHT)) {
        if (o->weight_seen)
            return vp_fail(err, VP_ERR_BAD_REQUEST, "api_keys_file",
                           "%s, line %zu: weight given twice", path, line);
        size_t w;
        if (option_number(f, len, sizeof OPT_WEIGHT - 1, 4, VP_API_KEY_MAX_WEIGHT, &w))
            return vp_fail(err, VP_ERR_BAD_REQUEST, "api_keys_file",
                           "%s, line %zu: weight must be a whole number from 1 to %d",
                           path, line, VP_API_KEY_MAX_WEIGHT);
        o->weight = (unsigned)w;
        o->weight_seen = true;
        return 0;
    }
    return vp_fail(err, VP_ERR_BAD_REQUEST, "api_keys_file",
                   "%s, line %zu: field %zu is not an option; a line is KEY, NAME KEY or "
                   "NAME KEY with max_priority=high|normal|low, max_queued=N and weight=N",
                   path, line, field);
}

/* The field at *q (up to a blank or end): its start and *len; *q moves past it and the
 * blanks after it. */
static const char *next_field(char **q, char *end, size_t *len)
{
    const char *start = *q;
    while (*q < end && !blank(**q))
        (*q)++;
    *len = (size_t)(*q - start);
    while (*q < end && blank(**q))
        (*q)++;
    return start;
}

/* Whether f[0..len) has an option's form (any of them). */
static bool any_option_form(const char *f, size_t len)
{
    return option_form(f, len, OPT_PRIORITY) || option_form(f, len, OPT_QUEUED) ||
           option_form(f, len, OPT_WEIGHT);
}

/* A "cert:NAME OPTION..." line's grants: NAME as tls_clients.h names a certificate's
 * client (letters, digits and ".-_@~"), once in the file. */
static int add_cert_grant(vp_api_keys *k, const char *path, size_t line, const char *name,
                          size_t len, const key_options *o, vp_error *err)
{
    if (len <= 5 || len > VP_API_KEY_NAME_MAX)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "api_keys_file",
                       "%s, line %zu: a certificate's client name is cert: and 1 to %d bytes",
                       path, line, VP_API_KEY_NAME_MAX - 5);
    for (size_t i = 5; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (c && strchr(".-_@~", c))))
            return vp_fail(err, VP_ERR_BAD_REQUEST, "api_keys_file",
                           "%s, line %zu: byte 0x%02x at offset %zu of the name; a "
                           "certificate's client name holds letters, digits and \".-_@~\" "
                           "after cert:", path, line, (unsigned char)c, i);
    }
    for (size_t i = 0; i < k->n_certs; i++)
        if (strlen(k->certs[i].name) == len && !memcmp(k->certs[i].name, name, len))
            return vp_fail(err, VP_ERR_BAD_REQUEST, "api_keys_file",
                           "%s, line %zu repeats the grants of line %zu", path, line,
                           k->certs[i].line);
    if (k->n_certs == VP_API_KEYS_MAX) /* each request's lookup reads them all */
        return vp_fail(err, VP_ERR_BAD_REQUEST, "api_keys_file",
                       "%s, line %zu: more than %d certificate grants", path, line,
                       VP_API_KEYS_MAX);
    if (k->n_certs == k->cap_certs) {
        size_t cap = k->cap_certs ? 2 * k->cap_certs : 8;
        cert_grant *c = realloc(k->certs, cap * sizeof *c);
        if (!c)
            return vp_fail(err, VP_ERR_NOMEM, "api_keys_file", "out of memory for the API keys");
        k->certs = c;
        k->cap_certs = cap;
    }
    cert_grant *g = &k->certs[k->n_certs++];
    memset(g, 0, sizeof *g);
    memcpy(g->name, name, len);
    memcpy(g->g.name, name, len);
    g->g.max_priority = o->max_priority;
    g->g.max_queued = o->max_queued;
    g->g.weight = o->weight;
    g->line = line;
    return 0;
}

/* The file's lines into k: "KEY", "NAME KEY", "NAME KEY OPTION..." or, for a client known
 * by its certificate, "cert:NAME OPTION...". */
static int parse_file(vp_api_keys *k, const char *path, char *text, size_t len, vp_error *err)
{
    if (strlen(text) != len)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "api_keys_file",
                       "%s holds a NUL byte (at offset %zu): it is not a text file of keys",
                       path, strlen(text));
    size_t line = 0, before = k->n;
    for (char *p = text; *p;) {
        char *end = strchr(p, '\n');
        char *next = end ? end + 1 : p + strlen(p);
        if (!end)
            end = next;
        line++;
        while (end > p && (end[-1] == '\r' || blank(end[-1]))) /* CRLF files too */
            end--;
        while (p < end && blank(*p))
            p++;
        if (p < end && *p != '#') {
            const char *f[2];
            size_t fl[2], n = 0, field = 0;
            key_options o = {.max_priority = VP_PRIORITY_HIGH, .weight = 1};
            /* "cert:NAME OPTION...": its second field is an option, not a key */
            char *rest = p;
            size_t l1, l2;
            next_field(&rest, end, &l1);
            const char *f2 = next_field(&rest, end, &l2);
            bool cert = l1 > 5 && !memcmp(p, "cert:", 5) && any_option_form(f2, l2);
            /* a lone "cert:NAME" would be a key spelled like a client's name: a grants
             * line that lost its options (and, as a key, locking out every client with
             * a certificate) */
            if (l1 >= 5 && !memcmp(p, "cert:", 5) && l2 == 0)
                return vp_fail(err, VP_ERR_BAD_REQUEST, "api_keys_file",
                               "%s, line %zu: cert:NAME without options: a certificate's "
                               "client's grants need at least one (weight=1 grants the "
                               "defaults), and a key may not be spelled like a client's name",
                               path, line);
            for (char *q = cert ? (char *)f2 : end; q < end;) {
                size_t l;
                const char *start = next_field(&q, end, &l);
                if (parse_option(start, l, &o, path, line, ++field + 1, err))
                    return -1;
            }
            if (cert) {
                if (add_cert_grant(k, path, line, p, l1, &o, err))
                    return -1;
                p = next;
                continue;
            }
            for (char *q = p; q < end;) {
                size_t l;
                const char *start = next_field(&q, end, &l);
                if (++field <= 2) {
                    f[n] = start;
                    fl[n++] = l;
                } else if (parse_option(start, l, &o, path, line, field, err)) {
                    return -1;
                }
            }
            /* "KEY max_priority=P" would take the key for a name (logged) */
            if (any_option_form(f[n - 1], fl[n - 1]))
                return vp_fail(err, VP_ERR_BAD_REQUEST, "api_keys_file",
                               "%s, line %zu: the key looks like an option; a line with "
                               "options is NAME KEY OPTION...", path, line);
            char dflt[32];
            int dl = snprintf(dflt, sizeof dflt, "line%zu", line);
            if (n == 1 ? add_key(k, path, f[0], fl[0], dflt, (size_t)dl, &o, line, err)
                       : add_key(k, path, f[1], fl[1], f[0], fl[0], &o, line, err))
                return -1;
            k->keys[k->n - 1].named = n == 2;
        }
        p = next;
    }
    if (k->n == before && !k->n_certs)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "api_keys_file",
                       "%s holds no key (a line is KEY or NAME KEY; lines starting with '#' "
                       "are comments)",
                       path);
    if (k->n_certs && k->n) /* the grants would never apply */
        return vp_fail(err, VP_ERR_BAD_REQUEST, "api_keys_file",
                       "%s, line %zu: grants of a certificate's client (cert:NAME) apply only "
                       "without API keys, and %s has a key: every request then needs one, "
                       "and its line's grants apply", path, k->certs[0].line,
                       before ? "option api_key" : "the file");
    return 0;
}

static int digest_cmp(const void *a, const void *b) { return memcmp(a, b, DIGEST); }

/* Refuses a name that is also a key of the set: a line's fields swapped, or an old key
 * left where a name goes, would put a key on every log line. */
static int names_not_keys(const vp_api_keys *k, const char *path, vp_error *err)
{
    uint8_t (*sorted)[DIGEST] = malloc(k->n * sizeof *sorted);
    if (!sorted)
        return vp_fail(err, VP_ERR_NOMEM, "api_keys_file", "out of memory for the API keys");
    for (size_t i = 0; i < k->n; i++)
        memcpy(sorted[i], k->keys[i].digest, DIGEST);
    qsort(sorted, k->n, sizeof *sorted, digest_cmp);
    int rc = 0;
    for (size_t i = 0; i < k->n && !rc; i++) {
        const api_key *e = &k->keys[i];
        uint8_t d[DIGEST];
        if (!e->named || gnutls_hash_fast(GNUTLS_DIG_SHA256, e->name, strlen(e->name), d) < 0)
            continue;
        if (bsearch(d, sorted, k->n, sizeof *sorted, digest_cmp))
            rc = vp_fail(err, VP_ERR_BAD_REQUEST, "api_keys_file",
                         "%s, line %zu: the name is also one of the keys (a line is NAME KEY: "
                         "are they swapped?)", path, e->line);
    }
    explicit_bzero(sorted, k->n * sizeof *sorted);
    free(sorted);
    return rc;
}

int vp_api_keys_load(const char *single, const char *file, vp_api_keys **out, vp_error *err)
{
    *out = NULL;
    if (!single && !file)
        return 0;
    vp_api_keys *k = calloc(1, sizeof *k);
    if (!k)
        return vp_fail(err, VP_ERR_NOMEM, "api_key", "out of memory for the API keys");
    if (single && add_key(k, NULL, single, strlen(single), "api_key", 7,
                          &(key_options){.max_priority = VP_PRIORITY_HIGH, .weight = 1}, 0, err)) {
        vp_api_keys_free(k);
        return -1;
    }
    if (file) {
        uint8_t *text = NULL;
        size_t len = 0;
        if (vp_read_file(file, VP_API_KEYS_FILE_MAX, &text, &len, err)) {
            char why[sizeof err->message];
            snprintf(why, sizeof why, "%s", err->message);
            vp_api_keys_free(k);
            return vp_fail(err, VP_ERR_IO, "api_keys_file", "option api_keys_file: %s", why);
        }
        int rc = parse_file(k, file, (char *)text, len, err);
        if (!rc)
            rc = names_not_keys(k, file, err);
        explicit_bzero(text, len);
        free(text);
        if (rc) {
            vp_api_keys_free(k);
            return -1;
        }
    }
    *out = k;
    return 0;
}
