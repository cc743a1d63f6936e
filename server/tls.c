/* HTTPS: the certificate and key files read at start, with errors that name the file;
 * libmicrohttpd (GnuTLS) then parses them and checks that they match. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/util/file.h"
#include "engine/util/log.h"
#include "server/internal.h"

#define PEM_MAX_BYTES (1u << 20) /* a certificate chain is a few KB */

/* explicit_bzero: a memset just before free is an optimiser's to drop */
static void wipe_free(char *p, size_t n)
{
    if (p)
        explicit_bzero(p, n);
    free(p);
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

/* path's text into *out; it must hold a PEM block whose label contains `label`. */
static int read_pem(const char *path, const char *option, const char *label, char **out,
                    vp_error *err)
{
    uint8_t *data = NULL;
    size_t len = 0;
    if (vp_read_file(path, PEM_MAX_BYTES, &data, &len, err)) {
        char why[sizeof err->message];
        snprintf(why, sizeof why, "%s", err->message);
        return vp_fail(err, VP_ERR_IO, option, "option %s: %s", option, why);
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

int vp_tls_load(const vp_config *cfg, vp_tls_files *out, vp_error *err)
{
    memset(out, 0, sizeof *out);
    if (read_pem(cfg->tls_cert, "tls_cert", "CERTIFICATE", &out->cert, err) ||
        read_pem(cfg->tls_key, "tls_key", "PRIVATE KEY", &out->key, err)) {
        vp_tls_free(out);
        return -1;
    }
    /* PKCS#8 "ENCRYPTED PRIVATE KEY", or a traditional key with "Proc-Type: 4,ENCRYPTED" */
    bool encrypted = strstr(out->key, "ENCRYPTED") != NULL;
    if (encrypted && !cfg->tls_key_password) {
        vp_tls_free(out);
        return vp_fail(err, VP_ERR_BAD_REQUEST, "tls_key_password",
                       "option tls_key: %s is encrypted: give its password with "
                       "tls_key_password (VPRM_TLS_KEY_PASSWORD or the config file keep it out "
                       "of the process list)", cfg->tls_key);
    }
    if (!encrypted && cfg->tls_key_password)
        VP_LOGW(NULL, "tls_key_password is set but the key %s is not encrypted", cfg->tls_key);
    struct stat st;
    if (stat(cfg->tls_key, &st) == 0 && (st.st_mode & S_IROTH))
        VP_LOGW(NULL, "the TLS key %s is readable by every user of this machine (chmod 600 it)",
                cfg->tls_key);
    return 0;
}

void vp_tls_free(vp_tls_files *t)
{
    if (!t)
        return;
    free(t->cert);
    wipe_free(t->key, t->key ? strlen(t->key) : 0); /* the key's bytes do not outlive their use */
    t->cert = t->key = NULL;
}
