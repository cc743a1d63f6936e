/* The API keys clients may present as "Authorization: Bearer KEY": --api-key and the
 * lines of --api-keys-file, each with a name that the request's log line carries (never
 * the key). The server swaps in a freshly loaded set on SIGHUP (reload.c), so keys can be
 * rotated without a restart. */
#ifndef VP_API_KEYS_H
#define VP_API_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/util/err.h"
#include "proto/request.h"

#define VP_API_KEY_NAME_MAX 64     /* bytes of a key's name */
#define VP_API_KEY_MIN 8           /* bytes of a key, at least */
#define VP_API_KEY_MAX 4096        /* and at most */
#define VP_API_KEYS_FILE_MAX (1u << 20)
#define VP_API_KEYS_MAX 10000      /* keys in all (each check compares 32 bytes a key) */

typedef struct vp_api_keys vp_api_keys;

/* The keys of `single` (named "api_key"; NULL = none) and of `file` (NULL = none): a
 * line is "KEY" (named "lineN"), "NAME KEY", or "NAME KEY OPTION..." with the options
 *   max_priority=P  the most its requests may ask for (high, the default, normal or low;
 *                   a request asking for more gets P);
 *   max_queued=N    jobs (a score request is one, a batch one an item) its requests may
 *                   have waiting or running at once, 1 to VP_API_KEY_MAX_QUEUED (default
 *                   no bound);
 *   weight=N        its share of the passes while other clients have work queued too
 *                   (engine/sched/sched.h: fair sharing), 1 to VP_API_KEY_MAX_WEIGHT
 *                   (default 1, a client without a key's).
 * A line "cert:NAME OPTION..." (at least one option, no key) gives those grants to the
 * client that its client certificate names cert:NAME (tls_clients.h), in a file without
 * keys and without `single` (with keys every request needs one, whose grants apply).
 * Blank lines and lines starting with '#' are skipped. Refused, with the line named
 * (never a key): a key shorter than VP_API_KEY_MIN or longer than VP_API_KEY_MAX, a byte
 * outside visible ASCII, a field after the key that is not an option or an option given
 * twice or out of range, a key in an option's form, a name of other than letters, digits
 * and ".-_@:", a key or a name given twice, a name that is also a key, more than
 * VP_API_KEYS_MAX keys, a file with no key. Only the keys' SHA-256 digests are kept. *out is NULL when neither is set (no authentication). */
int vp_api_keys_load(const char *single, const char *file, vp_api_keys **out, vp_error *err);

#define VP_API_KEY_MAX_QUEUED 16777216 /* the largest max_queued */
#define VP_API_KEY_MAX_WEIGHT 1000     /* the largest weight */

/* What a key grants its requests. */
typedef struct vp_api_key_grant {
    char name[VP_API_KEY_NAME_MAX + 1];
    vp_priority max_priority; /* the highest priority its jobs get */
    size_t max_queued;        /* jobs waiting or running at once; 0 = no bound */
    unsigned weight;          /* its share of the passes, 1..VP_API_KEY_MAX_WEIGHT */
} vp_api_key_grant;

/* Whether a key equals token[0..len); if so *out (when not NULL) what it grants. The
 * token's digest is compared with every key's, whole, whatever matched: the time says
 * nothing of which key nor where a wrong token differs. */
bool vp_api_keys_match(const vp_api_keys *k, const char *token, size_t len,
                       vp_api_key_grant *out);

/* Keys of the set (0: no key is required, though the set may hold certificate grants). */
size_t vp_api_keys_count(const vp_api_keys *k);
/* Lines "cert:NAME OPTION..." of the file: what the client its certificate names NAME
 * (tls_clients.h) is granted; allowed only in a file without keys (and no api_key). */
size_t vp_api_keys_cert_grants(const vp_api_keys *k);
/* The grants of the certificate's client name ("cert:..."): true and *out, or false. */
bool vp_api_keys_cert_grant(const vp_api_keys *k, const char *name, vp_api_key_grant *out);
void vp_api_keys_free(vp_api_keys *k); /* the keys' bytes are wiped */

#endif
