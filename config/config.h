/* Service configuration: every limit, timeout and switch of `vprm serve`.
 *
 * Sources, lowest to highest precedence:
 *   built-in defaults < config file (--config FILE or VPRM_CONFIG, JSON object)
 *                     < environment (VPRM_<NAME>, e.g. VPRM_PORT)
 *                     < command-line flags (--<name-with-dashes>, e.g. --max-body-bytes)
 * Every option has one name: "max_body_bytes" in the JSON file, VPRM_MAX_BODY_BYTES in the
 * environment, --max-body-bytes on the command line. Values are validated once, at start;
 * an invalid value is refused with a message naming the option and its source. */
#ifndef VP_CONFIG_H
#define VP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "engine/util/err.h"

typedef struct vp_config {
    /* model and engine */
    char *model_dir;           /* required by serve */
    char *backend;             /* "cpu" | "cuda" */
    int device;                /* CUDA device index */
    int threads;               /* engine CPU threads, 0 = all cores */
    int random_weights;        /* >= 0: backend-drawn random weights of this seed; -1 = load */
    char *system_message;      /* NULL = config.json / the PRM default */
    bool prefix_sharing;
    size_t image_cache_bytes;  /* 0 = no image cache */
    size_t prefix_cache_bytes; /* backend memory for the prefix KV cache, 0 = off */
    size_t prefix_cache_host_bytes; /* ids and tiles its entries keep on the host */
    size_t prefix_cache_min_tokens; /* shortest prefix stored or loaded */
    int image_threads;         /* 0 = min(4, cores) */
    bool warmup;               /* run a warm-up pass before /ready says 200 */
    /* HTTP */
    char *host;
    int port;                  /* 0 = any free port (printed in the "listening on" line) */
    int http_threads;          /* libmicrohttpd thread pool size */
    int max_connections;
    int max_connections_per_ip;/* 0 = unlimited */
    int connection_timeout_s;  /* idle connection (slow or truncated body) timeout */
    int body_timeout_s;        /* headers to the end of the body, at most */
    int header_timeout_s;      /* accept (or a kept-alive connection's next byte) to a
                                * complete request head, at most */
    char *tls_cert, *tls_key;  /* PEM files: HTTPS when set (both or neither) */
    char *tls_key_password;    /* an encrypted key's, or NULL */
    char *tls_client_ca;       /* PEM file of the CAs of accepted client certificates
                                * (mutual TLS), re-read on SIGHUP; NULL = none asked */
    size_t max_header_bytes;   /* libmicrohttpd's memory per connection: bounds the head */
    char *api_key;             /* NULL = no authentication (unless api_keys_file) */
    char *api_keys_file;       /* more keys, one a line, re-read on SIGHUP; NULL = none */
    int credentials_check_s;   /* seconds between checks of the credential files for a
                                * change that reloads them (0 = on SIGHUP only) */
    int retry_after_s;         /* Retry-After on 429 / 503 */
    /* request limits */
    size_t max_body_bytes;
    size_t max_bodies_bytes;   /* request bodies held at once, all connections */
    size_t max_json_values;    /* values of one body, counted before parsing */
    size_t max_responses;      /* per request */
    size_t max_steps;          /* per response */
    size_t max_images;         /* per request */
    size_t max_image_bytes;    /* encoded bytes per image */
    size_t max_image_pixels;   /* decoded pixels per image */
    size_t max_image_side;     /* width and height of an image */
    size_t max_jpeg_scans;     /* scans of a JPEG image */
    int max_tiles;             /* upper bound of a request's max_tiles */
    size_t max_text_bytes;     /* question or one response */
    size_t max_request_tokens; /* prompt tokens of one request, all responses */
    size_t max_batch_requests; /* items of one POST /v1/score/batch */
    /* scheduler */
    size_t max_queue;          /* queued jobs; 429 above */
    size_t max_queued_tiles;   /* tiles of queued jobs; 429 above */
    size_t batch_tokens;       /* token budget of one packed pass */
    size_t batch_tiles;        /* tile budget of one packed pass */
    int queue_timeout_ms;      /* a job waiting longer is answered 503; 0 = no limit */
    int priority_boost_ms;     /* head start of "high" over normal, normal over "low" */
    bool fair_share;           /* share passes between API keys' (certificates') names */
    int drain_timeout_s;       /* SIGTERM: time to finish queued work */
    int drain_answer_timeout_s; /* then: time for answers still being written */
    bool exit_on_device_failure; /* exit 3 when the GPU fails for good (else serve 503s) */
    int pass_timeout_s;        /* a forward call running longer: the device hung (0 = off;
                                * -1 = auto, resolved by `vprm serve` from the backend) */
    bool cancel_on_disconnect; /* drop the work of a client that closed its connection */
    /* image URLs */
    bool allow_image_urls;
    size_t url_max_bytes;
    size_t url_max_length;     /* characters of one image URL (parse time) */
    size_t url_max_per_request; /* distinct image URLs of one HTTP request */
    size_t url_max_request_bytes; /* bytes fetched for one HTTP request, repeats counted */
    int url_timeout_ms;
    int url_request_timeout_ms; /* all of one HTTP request's fetches, its queue wait included */
    int url_max_redirects;
    bool url_allow_private;    /* allow loopback/private/link-local targets */
    char *url_ports;           /* ports fetched from (config/port_list.h) */
    int url_fetch_threads;     /* fetch workers: requests fetching their images at once */
    size_t url_fetch_queue;    /* requests waiting for a fetch worker; 429 above */
    /* logs */
    char *log_level;           /* debug | info | warn | error */
    char *log_format;          /* text | json */
    bool log_bodies;           /* log the first bytes of each request body (debug aid) */
} vp_config;

/* The built-in defaults; -1 when out of memory (vp_config_free releases what was set). */
int vp_config_default(vp_config *c);
void vp_config_free(vp_config *c);

/* Applies every source in order and validates. argv[0] is the command name
 * ("serve"); environ is the process environment (NULL-terminated "K=V" strings).
 * Returns 0, 1 when --help was asked (help already printed to `out`), or -1 with err
 * naming the option. */
int vp_config_load(vp_config *c, int argc, char **argv, char **environ_, FILE *out,
                   vp_error *err);

/* The single steps, for tests and for callers that compose their own order. */
int vp_config_apply_json_text(vp_config *c, const char *text, size_t len, const char *origin,
                              vp_error *err);
int vp_config_apply_file(vp_config *c, const char *path, vp_error *err);
int vp_config_apply_env(vp_config *c, char **environ_, vp_error *err);
int vp_config_apply_args(vp_config *c, int argc, char **argv, bool *help, vp_error *err);
/* Sets one option by its name ("max_body_bytes") from text; origin names the source. */
int vp_config_set(vp_config *c, const char *name, const char *value, const char *origin,
                  vp_error *err);
/* Cross-field checks (the per-option range checks happen in vp_config_set). */
int vp_config_validate(const vp_config *c, vp_error *err);

/* `vprm serve --help`: every option with its flag, environment name, default, meaning. */
void vp_config_print_help(FILE *f);
/* A whole decimal number, the whole string; allow_suffix takes K/M/G/T (binary, optional
 * "B"/"iB" after it). 0, or -1 when it is not one or overflows. */
int vp_config_parse_number(const char *s, bool allow_suffix, long long *out);
/* One line per option with its effective value (api_key masked), for the start log. */
void vp_config_dump(const vp_config *c, FILE *f);

#endif
