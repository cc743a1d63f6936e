/* PEM files of the TLS options (pem.h). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/util/file.h"
#include "server/pem.h"

/* explicit_bzero: a memset just before free is an optimiser's to drop */
static void wipe_free(char *p, size_t n)
{
    if (p)
        explicit_bzero(p, n);
    free(p);
}

void vp_pem_wipe_free(char *text)
{
    wipe_free(text, text ? strlen(text) : 0);
}

/* Whether a "-----BEGIN <...label>-----" line of text ends its label with `label` ("EC
 * PRIVATE KEY" and "PRIVATE KEY" for a key, not "CERTIFICATE REQUEST" for a certificate);
 * a key file may start with another block (`openssl ecparam -genkey`: EC PARAMETERS). */
static bool has_block(const char *text, const char *label)
{
    size_t n = strlen(label);
    for (const char *b = strstr(text, "-----BEGIN "); b; b = strstr(b + 11, "-----BEGIN ")) {
        const char *end = strstr(b + 11, "-----");
        if (end && (size_t)(end - (b + 11)) >= n && !memcmp(end - n, label, n) &&
            !memmem(b, (size_t)(end - b), "OPENSSH", 7)) /* OpenSSH's own format, not PEM */
            return true;
    }
    return false;
}

int vp_pem_read(const char *path, const char *option, const char *label, char **out,
                vp_error *err)
{
    uint8_t *data = NULL;
    size_t len = 0;
    if (vp_read_file(path, VP_PEM_MAX_BYTES, &data, &len, err)) {
        char why[sizeof err->message];
        snprintf(why, sizeof why, "%s", err->message);
        /* out of memory stays so: not the file's fault */
        return vp_fail(err, err->kind == VP_ERR_NOMEM ? VP_ERR_NOMEM : VP_ERR_IO, option,
                       "option %s: %s", option, why);
    }
    if (strlen((const char *)data) != len || !has_block((const char *)data, label)) {
        wipe_free((char *)data, len);
        return vp_fail(err, VP_ERR_BAD_REQUEST, option,
                       "option %s: %s is not a PEM file with a \"-----BEGIN ...%s...-----\" "
                       "block", option, path, label);
    }
    *out = (char *)data;
    return 0;
}
