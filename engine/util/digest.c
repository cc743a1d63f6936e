/* SHA-256 by GnuTLS (digest.h). */
#include "engine/util/digest.h"

#include <gnutls/crypto.h>

int vp_digest(const void *data, size_t n, uint8_t out[VP_DIGEST_BYTES])
{
    return gnutls_hash_fast(GNUTLS_DIG_SHA256, data, n, out) < 0 ? -1 : 0;
}
