/* The API keys file (--api-keys-file, server/api_keys.c), read at start and on every
 * SIGHUP. The input is the file's bytes, given through a memfd's /proc path.
 * Seeds: keys files written by hand (names, bare keys, comments, CRLF, refusals).
 * Promises:
 *  - the file is accepted exactly when a reference parser written here from the
 *    documented format accepts it ("KEY", "NAME KEY" or "NAME KEY" with options
 *    max_priority=high|normal|low, max_queued=1..16777216 (9 digits at most) and
 *    weight=1..1000 (4 digits at most) a line,
 *    each at most once, never in the key's place), blanks and '#' lines skipped, spaces, tabs and a CR at a line's end trimmed; keys of 8 to 4096 bytes of
 *    visible ASCII, names of at most 64 letters, digits and ".-_@:" not starting with
 *    "cert:", no key or name twice,
 *    at least one key, no NUL byte, no given name equal to a key); or lines
 *    "cert:NAME OPTION..." (NAME 1 to 59 of letters, digits and ".-_@~", once; the second
 *    field an option) in a file with no key;
 *  - accepted: the same number of keys, each key matching with the reference's name
 *    ("lineN" for a bare key), highest priority (high when not given) and
 *    max_queued (0 when not given), weight (1 when not given), and the key with a byte
 *    changed, cut or extended matching
 *    none or another key of the file only;
 *  - refused: a BAD_REQUEST for param "api_keys_file" whose message names the file and,
 *    when the reference names a line, that line ("line N"); the message never holds a
 *    key the file declared before the refusal, nor a field of the refused line (secrets);
 *  - nothing leaks (ASan's leak check). */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "server/api_keys.h"
#include "tests/fuzz/fuzz.h"

#define REF_MAX 10000 /* VP_API_KEYS_MAX, written apart */

typedef struct ref_key {
    const uint8_t *key, *name;
    size_t klen, nlen;
    int max_priority; /* 0 high (the default), 1 normal, 2 low */
    long max_queued;  /* 0: no bound */
    long weight;      /* 1 when not given */
    size_t line;
    char dflt[32];
} ref_key;

typedef struct ref_cert {
    const uint8_t *name;
    size_t nlen, line;
    int max_priority;
    long max_queued, weight;
} ref_cert;

typedef struct ref {
    ref_key keys[REF_MAX];
    size_t n;
    ref_cert certs[REF_MAX];
    size_t n_certs;
    size_t bad_line; /* the line refused (0: the file as a whole) */
    /* the refused line's fields (its name, which may be a misplaced key, its key, options,
     * stray keys): secrets too */
    const uint8_t *bad_field[8];
    size_t bad_len[8], n_bad;
} ref;

static bool ref_blank(uint8_t c) { return c == ' ' || c == '\t'; }

/* Whether d[0..n) is one of the options' "prefix=" followed by at least one byte. */
static bool ref_option_form(const uint8_t *d, size_t n)
{
    static const char *const pre[] = {"max_priority=", "max_queued=", "weight="};
    for (int i = 0; i < 3; i++)
        if (n > strlen(pre[i]) && !memcmp(d, pre[i], strlen(pre[i])))
            return true;
    return false;
}

static bool ref_name_char(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '-' || c == '_' || c == '@' || c == ':';
}

/* 0 and r filled, or -1 (r->bad_line the line, or 0) */
static int ref_parse(const uint8_t *d, size_t n, ref *r)
{
    r->n = 0;
    r->n_certs = 0;
    r->bad_line = 0;
    r->n_bad = 0;
    if (memchr(d, 0, n))
        return -1;
    size_t line = 0;
    for (size_t at = 0; at < n;) {
        size_t end = at;
        while (end < n && d[end] != '\n')
            end++;
        size_t next = end < n ? end + 1 : end;
        line++;
        size_t b = at, e = end;
        while (e > b && (d[e - 1] == '\r' || ref_blank(d[e - 1])))
            e--;
        while (b < e && ref_blank(d[b]))
            b++;
        at = next;
        if (b == e || d[b] == '#')
            continue;
        size_t fs[2], fe[2], nf = 0, field = 0;
        r->n_bad = 0;
        int maxp = 0, seen = 0, qseen = 0, wseen = 0;
        long maxq = 0, wt = 1;
        /* "cert:NAME OPTION...": a first field past "cert:", then an option */
        size_t e1 = b;
        while (e1 < e && !ref_blank(d[e1]))
            e1++;
        size_t s2 = e1;
        while (s2 < e && ref_blank(d[s2]))
            s2++;
        size_t e2 = s2;
        while (e2 < e && !ref_blank(d[e2]))
            e2++;
        bool cert = e1 - b > 5 && !memcmp(d + b, "cert:", 5) && ref_option_form(d + s2, e2 - s2);
        size_t opt_from = cert ? 2 : 3; /* the first field that is an option */
        for (size_t q = b; q < e;) {
            size_t s0 = q;
            while (q < e && !ref_blank(d[q]))
                q++;
            size_t s1 = q;
            while (q < e && ref_blank(d[q]))
                q++;
            if (field < 8) { /* the fields a message must not quote */
                r->bad_field[field] = d + s0;
                r->bad_len[field] = s1 - s0;
            }
            if (++field < opt_from) {
                fs[nf] = s0;
                fe[nf++] = s1;
                continue;
            }
            static const char *const vals[] = {"max_priority=high", "max_priority=normal",
                                               "max_priority=low"};
            int v = -1;
            for (int i = 0; i < 3; i++)
                if (s1 - s0 == strlen(vals[i]) && !memcmp(d + s0, vals[i], s1 - s0))
                    v = i;
            /* max_queued=N: 1 to 9 digits, 1 to 16777216 */
            long qv = -1;
            if (s1 - s0 > 11 && !memcmp(d + s0, "max_queued=", 11) && s1 - s0 - 11 <= 9) {
                qv = 0;
                for (size_t i = s0 + 11; i < s1 && qv >= 0; i++)
                    qv = d[i] >= '0' && d[i] <= '9' ? qv * 10 + (d[i] - '0') : -1;
                if (qv < 1 || qv > 16777216)
                    qv = -1;
            }
            /* weight=N: 1 to 4 digits, 1 to 1000 */
            long wv = -1;
            bool is_weight = s1 - s0 > 7 && !memcmp(d + s0, "weight=", 7);
            if (is_weight && s1 - s0 - 7 <= 4) {
                wv = 0;
                for (size_t i = s0 + 7; i < s1 && wv >= 0; i++)
                    wv = d[i] >= '0' && d[i] <= '9' ? wv * 10 + (d[i] - '0') : -1;
                if (wv < 1 || wv > 1000)
                    wv = -1;
            }
            bool is_prio = s1 - s0 > 13 && !memcmp(d + s0, "max_priority=", 13);
            bool bad = is_prio     ? (v < 0 || seen++)
                       : is_weight ? (wv < 0 || wseen++)
                                   : (qv < 0 || qseen++);
            if (bad) {
                r->n_bad = field < 8 ? field : 8;
                r->bad_line = line;
                return -1;
            }
            if (is_prio)
                maxp = v;
            else if (is_weight)
                wt = wv;
            else
                maxq = qv;
        }
        r->n_bad = field < 8 ? field : 8;
        if (cert) { /* the name: cert: and 1 to 59 of [A-Za-z0-9.-_@~], once in the file */
            size_t nl = fe[0] - fs[0];
            bool fine = nl <= 64;
            for (size_t i = 5; fine && i < nl; i++) {
                uint8_t c = d[fs[0] + i];
                fine = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '.' || c == '-' || c == '_' || c == '@' || c == '~';
            }
            for (size_t j = 0; fine && j < r->n_certs; j++)
                fine = !(r->certs[j].nlen == nl && !memcmp(r->certs[j].name, d + fs[0], nl));
            if (!fine || r->n_certs == REF_MAX) {
                r->bad_line = line;
                return -1;
            }
            r->certs[r->n_certs++] = (ref_cert){.name = d + fs[0], .nlen = nl, .line = line,
                                                .max_priority = maxp, .max_queued = maxq,
                                                .weight = wt};
            continue;
        }
        size_t kf = nf - 1; /* the key's field: an option there is refused */
        if ((fe[kf] - fs[kf] > 13 && !memcmp(d + fs[kf], "max_priority=", 13)) ||
            (fe[kf] - fs[kf] > 11 && !memcmp(d + fs[kf], "max_queued=", 11)) ||
            (fe[kf] - fs[kf] > 7 && !memcmp(d + fs[kf], "weight=", 7))) {
            r->bad_line = line;
            return -1;
        }
        if (r->n == REF_MAX) {
            r->bad_line = line;
            return -1;
        }
        ref_key *k = &r->keys[r->n];
        k->max_priority = maxp;
        k->max_queued = maxq;
        k->weight = wt;
        k->line = line;
        size_t ki = nf == 1 ? 0 : 1;
        k->key = d + fs[ki];
        k->klen = fe[ki] - fs[ki];
        if (nf == 1) {
            int len = snprintf(k->dflt, sizeof k->dflt, "line%zu", line);
            k->name = (const uint8_t *)k->dflt;
            k->nlen = (size_t)len;
        } else {
            k->name = d + fs[0];
            k->nlen = fe[0] - fs[0];
        }
        bool fine = k->klen >= 8 && k->klen <= 4096 && k->nlen <= 64;
        for (size_t i = 0; fine && i < k->klen; i++)
            fine = k->key[i] > ' ' && k->key[i] < 0x7f;
        for (size_t i = 0; fine && nf == 2 && i < k->nlen; i++)
            fine = ref_name_char(k->name[i]);
        fine = fine && !(nf == 2 && k->nlen >= 5 && !memcmp(k->name, "cert:", 5));
        for (size_t j = 0; fine && j < r->n; j++)
            fine = !(r->keys[j].klen == k->klen && !memcmp(r->keys[j].key, k->key, k->klen)) &&
                   !(r->keys[j].nlen == k->nlen && !memcmp(r->keys[j].name, k->name, k->nlen));
        if (!fine) {
            r->bad_line = line;
            return -1;
        }
        r->n++;
    }
    r->n_bad = 0;
    if (!r->n && !r->n_certs)
        return -1;
    if (r->n && r->n_certs) { /* certificate grants only without keys */
        r->bad_line = r->certs[0].line;
        return -1;
    }
    for (size_t i = 0; i < r->n; i++) /* a given name that is also a key */
        for (size_t j = 0; r->keys[i].name != (const uint8_t *)r->keys[i].dflt && j < r->n; j++)
            if (r->keys[i].nlen == r->keys[j].klen &&
                !memcmp(r->keys[i].name, r->keys[j].key, r->keys[j].klen)) {
                r->bad_line = r->keys[i].line;
                return -1;
            }
    return 0;
}

static ref R;

/* The fixed text of api_keys.c's messages: a "key" that is part of it shows up innocently. */
static const char *const phrases[] = {
    ("is not an option; a line is KEY, NAME KEY or NAME KEY with max_priority=high|normal|low, "
     "max_queued=N and weight=N"),
    "max_priority must be high, normal or low", "max_priority given twice",
    "max_queued must be a whole number of jobs from 1 to 16777216, in at most 9 digits",
    "max_queued given twice", "weight must be a whole number from 1 to 1000",
    "weight given twice",
    "the key looks like an option; a line with options is NAME KEY OPTION...",
    "more than 10000 keys",
    "holds no key (a line is KEY or NAME KEY; lines starting with '#' are comments)",
    "the name is also one of the keys (a line is NAME KEY: are they swapped?)",
    "repeats the key of line", "repeats the name of line option api_key",
    "the byte at offset of the key is not visible ASCII (a space, a control character or non-ASCII)",
    "the key has bytes; 8 to 4096 are allowed", "the name has bytes; at most 64 are allowed",
    "of the name; a name holds letters, digits and \".-_@:\" only",
    "a name may not start with \"cert:\", the prefix of clients named by their certificate",
    "holds a NUL byte (at offset): it is not a text file of keys",
    "a certificate's client name is cert: and 1 to 59 bytes", "repeats the grants of line",
    "more than 10000 certificate grants",
    "a certificate's client name holds letters, digits and \".-_@~\" after cert:",
    ("grants of a certificate's client (cert:NAME) apply only without API keys, and the file "
     "has a key: every request then needs one, and its line's grants apply")};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > VP_API_KEYS_FILE_MAX)
        return 0;
    int fd = memfd_create("fuzz_api_keys", 0);
    FUZZ_REQUIRE(fd >= 0, "memfd_create failed");
    FUZZ_REQUIRE(size == 0 || write(fd, data, size) == (ssize_t)size, "write failed");
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    vp_api_keys *k = NULL;
    vp_error err;
    memset(&err, 0, sizeof err);
    int rc = vp_api_keys_load(NULL, path, &k, &err);
    close(fd);
    int want = ref_parse(data, size, &R);
    FUZZ_REQUIRE((rc == 0) == (want == 0), "api_keys.c %s, the reference %s (line %zu): %s",
                 rc ? "refused" : "accepted", want ? "refuses" : "accepts", R.bad_line,
                 rc ? err.message : "");
    if (rc) {
        FUZZ_REQUIRE_ERROR(err);
        FUZZ_REQUIRE(err.kind == VP_ERR_BAD_REQUEST && !strcmp(err.param, "api_keys_file"),
                     "kind %d param %s", (int)err.kind, err.param);
        FUZZ_REQUIRE(strstr(err.message, path) != NULL, "the file is not named: %s", err.message);
        if (R.bad_line) {
            char at[40];
            snprintf(at, sizeof at, "line %zu", R.bad_line);
            FUZZ_REQUIRE(strstr(err.message, at) != NULL, "'%s' not named: %s", at, err.message);
        }
        /* no key declared before the refusal is in the message (unless the path or the
         * message's own words happen to hold it) */
        for (size_t i = 0; i < R.n; i++) {
            char key[4097];
            memcpy(key, R.keys[i].key, R.keys[i].klen);
            key[R.keys[i].klen] = 0;
            bool shown = strstr(path, key) != NULL;
            for (size_t j = 0; j < sizeof phrases / sizeof *phrases && !shown; j++)
                shown = strstr(phrases[j], key) != NULL;
            FUZZ_REQUIRE(shown || strstr(err.message, key) == NULL, "key %zu in the message: %s",
                         i, err.message);
        }
        for (size_t i = 0; i < R.n_bad; i++) {
            if (R.bad_len[i] < 8) /* short fields show up in any text */
                continue;
            char field[4097];
            size_t fl = R.bad_len[i] < 4096 ? R.bad_len[i] : 4096;
            memcpy(field, R.bad_field[i], fl);
            field[fl] = 0;
            bool shown = strstr(path, field) != NULL;
            for (size_t j = 0; j < sizeof phrases / sizeof *phrases && !shown; j++)
                shown = strstr(phrases[j], field) != NULL;
            FUZZ_REQUIRE(shown || strstr(err.message, field) == NULL,
                         "field %zu of the refused line in the message: %s", i, err.message);
        }
        return 0;
    }
    FUZZ_REQUIRE(vp_api_keys_count(k) == R.n, "%zu keys, the reference %zu",
                 vp_api_keys_count(k), R.n);
    FUZZ_REQUIRE(vp_api_keys_cert_grants(k) == R.n_certs, "%zu certificate grants, the "
                 "reference %zu", vp_api_keys_cert_grants(k), R.n_certs);
    for (size_t i = 0; i < R.n_certs; i++) {
        const ref_cert *rg = &R.certs[i];
        char name[80];
        memcpy(name, rg->name, rg->nlen);
        name[rg->nlen] = 0;
        vp_api_key_grant g;
        FUZZ_REQUIRE(vp_api_keys_cert_grant(k, name, &g) && !strcmp(g.name, name) &&
                         (int)g.max_priority == rg->max_priority &&
                         (long)g.max_queued == rg->max_queued && (long)g.weight == rg->weight,
                     "certificate grant %zu (%s) differs from the reference", i, name);
        FUZZ_REQUIRE(!vp_api_keys_match(k, name, rg->nlen, NULL), "a grant's name is a key");
    }
    for (size_t i = 0; i < R.n; i++) {
        const ref_key *rk = &R.keys[i];
        vp_api_key_grant g;
        memset(&g, 0xff, sizeof g);
        bool hit = vp_api_keys_match(k, (const char *)rk->key, rk->klen, &g);
        FUZZ_REQUIRE(hit && strlen(g.name) == rk->nlen && !memcmp(g.name, rk->name, rk->nlen),
                     "key %zu matched %s", i, hit ? g.name : "nothing");
        FUZZ_REQUIRE((int)g.max_priority == rk->max_priority &&
                         (long)g.max_queued == rk->max_queued && (long)g.weight == rk->weight,
                     "key %zu: max_priority %d max_queued %zu weight %u, the reference %d %ld "
                     "%ld", i, (int)g.max_priority, g.max_queued, g.weight, rk->max_priority,
                     rk->max_queued, rk->weight);
        /* a changed byte, a cut and an extension match nothing, or another key of the
         * file whole */
        char probe[4098];
        memcpy(probe, rk->key, rk->klen);
        size_t lens[3] = {rk->klen, rk->klen - 1, rk->klen + 1};
        probe[rk->klen] = 'x';
        for (int v = 0; v < 3; v++) {
            char saved = probe[0];
            if (v == 0)
                probe[0] = (char)(probe[0] == 'A' ? 'B' : 'A');
            bool other = vp_api_keys_match(k, probe, lens[v], NULL);
            bool another = false;
            for (size_t j = 0; other && j < R.n; j++)
                another |= R.keys[j].klen == lens[v] && !memcmp(R.keys[j].key, probe, lens[v]);
            FUZZ_REQUIRE(!other || another, "a variant %d of key %zu matched a key", v, i);
            probe[0] = saved;
        }
    }
    vp_api_keys_free(k);
    return 0;
}
