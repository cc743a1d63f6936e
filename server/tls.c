/* HTTPS: the certificate and key files read at start, with errors that name the file;
 * libmicrohttpd (GnuTLS) then parses them and checks that they match. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/util/file.h"
#include "engine/util/log.h"
#include "server/internal.h"

#define PEM_MAX_BYTES (1u << 20) /* a certificate chain is a few KB */

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
    const char *begin = strstr((const char *)data, "-----BEGIN ");
    const char *eol = begin ? strstr(begin, "-----\n") : NULL;
    if (!eol)
        eol = begin ? strstr(begin, "-----\r\n") : NULL;
    bool labelled = begin && eol && memmem(begin, (size_t)(eol - begin), label, strlen(label));
    if (strlen((const char *)data) != len || !labelled) {
        free(data);
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
    if (t->key) /* the key's bytes do not outlive their use */
        memset(t->key, 0, strlen(t->key));
    free(t->cert);
    free(t->key);
    t->cert = t->key = NULL;
}
