/* A small blocking HTTP client on libcurl for the benchmark and the HTTP test tools:
 * one request, the status, the response headers and the body. */
#ifndef VP_HTTP_CLIENT_H
#define VP_HTTP_CLIENT_H

#include <stddef.h>

typedef struct vp_http_reply {
    long status;        /* 0 when no response arrived */
    char *headers;      /* raw header block, NUL-terminated */
    char *body;         /* [len] + NUL */
    size_t len;
    double ms;          /* wall time of the exchange */
    char error[256];    /* transport error text, "" when a response arrived */
} vp_http_reply;

/* A growing byte buffer, NUL-terminated after its n bytes, and the libcurl write (or
 * header) callback that appends to it (ud: a vp_http_buf; 0 on allocation failure, which
 * stops the transfer). */
typedef struct vp_http_buf {
    char *p;
    size_t n;
} vp_http_buf;
size_t vp_http_buf_append(char *ptr, size_t size, size_t nmemb, void *ud);

/* headers: NULL-terminated list of "Name: value" (may be NULL). body may be NULL (GET).
 * Returns 0 when a response arrived (any status), -1 on a transport error. */
int vp_http_request(const char *method, const char *url, const char *body, size_t len,
                    const char *const *headers, long timeout_s, vp_http_reply *out);
void vp_http_reply_free(vp_http_reply *r);
/* A client certificate and its key (PEM files) that every later HTTPS request presents
 * (mutual TLS, the server's --tls-client-ca); NULL = none. Set before requests start. */
void vp_http_set_client_cert(const char *cert, const char *key);
/* HTTPS: the server's certificate is checked against the system's CAs, or against the
 * file named by CURL_CA_BUNDLE (the curl tool's variable) when set; the client certificate
 * set above is presented. curl: a CURL handle. */
void vp_http_set_tls(void *curl);
/* Value of response header `name` (case-insensitive) copied into buf, or NULL. */
const char *vp_http_header(const vp_http_reply *r, const char *name, char *buf, size_t cap);

#endif
