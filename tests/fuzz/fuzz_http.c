/* Raw bytes to the HTTP daemon: a `vprm serve` of a random tiny model on a loopback
 * port (one per process, started once), with an API key and small limits. Each input is
 * sent on a new connection. An input starting with byte 0x01 (dropped) keeps the
 * connection open and is read until the daemon goes quiet after answering, as a normal
 * client would; any other closes its write side after sending, which is fast but counts
 * as a client that went away (the daemon cancels its queued scoring, by design).
 * Promises: the daemon answers or closes in time (within the connection timeout
 * plus 10 s: no hang); whatever it answers
 * starts with an HTTP/1.x status line; an error it writes as JSON has a type and a
 * message; and after every input a fresh GET /health is answered 200 (it keeps serving).
 * libmicrohttpd does the HTTP parsing; what is fuzzed is the service around it: routes,
 * authentication, body accumulation and limits, request parsing, the queue. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/config.h"
#include "engine/engine.h"
#include "server/server.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/fuzz_tiny_model.h"

#define ANSWER_LIMIT_MS 12000 /* the 2 s connection timeout + 10 s */
#define QUIET_MS 300           /* kept-open mode: no more bytes this long after some */
#define READ_CAP ((size_t)1 << 20)

static char model_dir[4096];
static vp_config cfg;
static vp_server *server;
static vp_engine *engine;
static int port;

static void cleanup(void)
{
    vp_server_stop(server);
    vp_engine_close(engine);
    vp_config_free(&cfg);
    fuzz_remove_tree(model_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    vp_error err = {0};
    fuzz_tiny_model(model_dir, "fuzz_http", 11);
    vp_config_default(&cfg);
    const char *const settings[][2] = {
        {"model", model_dir},          {"host", "127.0.0.1"},
        {"port", "0"},                 {"api_key", "fuzz-key-0123"},
        {"threads", "1"},              {"http_threads", "2"},
        {"connection_timeout_s", "2"}, {"max_body_bytes", "65536"},
        {"max_image_bytes", "16384"},  {"max_image_pixels", "65536"},
        {"max_tiles", "2"},            {"max_responses", "8"},
        {"max_request_tokens", "4096"}, {"max_batch_requests", "4"},
        {"max_text_bytes", "16384"},   {"max_queue", "16"},
        {"queue_timeout_ms", "8000"},
        {"warmup", "false"},           {"log_level", "error"},
    };
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
        FUZZ_REQUIRE(vp_config_set(&cfg, settings[i][0], settings[i][1], "fuzz_http", &err) == 0,
                     "%s=%s: %s", settings[i][0], settings[i][1], err.message);
    FUZZ_REQUIRE(vp_config_validate(&cfg, &err) == 0, "config: %s", err.message);
    FUZZ_REQUIRE(vp_server_start(&cfg, &server, &err) == 0, "server: %s", err.message);
    port = vp_server_port(server);
    vp_engine_options eo;
    vp_engine_options_default(&eo);
    eo.model_dir = model_dir;
    eo.threads = 1;
    eo.max_request_tokens = cfg.max_request_tokens;
    eo.max_image_pixels = cfg.max_image_pixels;
    eo.max_image_bytes = cfg.max_image_bytes;
    eo.max_tiles = cfg.max_tiles;
    FUZZ_REQUIRE(vp_engine_open(&eo, &engine, &err) == 0, "engine: %s", err.message);
    FUZZ_REQUIRE(vp_server_attach_engine(server, engine, &err) == 0, "attach: %s", err.message);
    atexit(cleanup);
    return 0;
}

/* Sends data on a new connection, closes its write side unless keep_open, and reads
 * until the daemon closes, goes quiet after answering (keep_open), or READ_CAP bytes;
 * the bytes read, NUL-terminated, in *out. */
static size_t exchange(const uint8_t *data, size_t size, bool keep_open, char **out)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    FUZZ_REQUIRE(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    FUZZ_REQUIRE(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect: %s", strerror(errno));
    for (size_t off = 0; off < size;) {
        ssize_t k = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (k <= 0)
            break; /* the daemon may close early (a refused header): not a failure */
        off += (size_t)k;
    }
    if (!keep_open)
        shutdown(fd, SHUT_WR);
    char *buf = malloc(READ_CAP + 1);
    FUZZ_REQUIRE(buf, "out of memory");
    size_t n = 0;
    int waited = 0;
    for (;;) {
        int wait = keep_open && n > 0 ? QUIET_MS : 100;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, wait);
        if (r == 0) {
            if (keep_open && n > 0)
                break; /* answered, and the connection is kept alive */
            waited += wait;
            FUZZ_REQUIRE(waited < ANSWER_LIMIT_MS, "no answer and no close within %d ms", waited);
            continue;
        }
        ssize_t k = recv(fd, buf + n, READ_CAP - n, 0);
        if (k <= 0 || (n += (size_t)k) == READ_CAP)
            break;
    }
    close(fd);
    buf[n] = '\0';
    *out = buf;
    return n;
}

/* The first response's status code, checking its status line and, for a JSON error
 * body, its fields. */
static int check_response(const char *r, size_t n)
{
    FUZZ_REQUIRE(n >= 12 && !strncmp(r, "HTTP/1.", 7) && r[8] == ' ',
                 "not an HTTP status line: '%.40s'", r);
    int status = atoi(r + 9);
    FUZZ_REQUIRE(status >= 100 && status <= 599, "status %d", status);
    const char *body = strstr(r, "\r\n\r\n");
    if (status >= 400 && body && strcasestr(r, "content-type: application/json")) {
        json_error_t je;
        json_t *j = json_loads(body + 4, JSON_DISABLE_EOF_CHECK, &je);
        FUZZ_REQUIRE(j, "status %d with a body that is not JSON: %s", status, je.text);
        json_t *e = json_object_get(j, "error");
        const char *msg = json_string_value(json_object_get(e, "message"));
        FUZZ_REQUIRE(json_string_value(json_object_get(e, "type")) && msg && *msg,
                     "status %d without error.type and error.message", status);
        json_decref(j);
    }
    return status;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bool keep_open = size > 0 && data[0] == 1;
    char *r;
    size_t n = keep_open ? exchange(data + 1, size - 1, true, &r) : exchange(data, size, false, &r);
    if (n > 0)
        check_response(r, n);
    free(r);
    static const char health[] = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    n = exchange((const uint8_t *)health, sizeof health - 1, false, &r);
    FUZZ_REQUIRE(n > 0 && check_response(r, n) == 200, "GET /health after the input: '%.60s'", r);
    free(r);
    return 0;
}
