/* The option table: the single place that lists what `vprm serve` can be told. */
#include "config/options.h"

#include <string.h>

#include "config/config.h"

#define OFF(field) offsetof(vp_config, field)
#define BIG (1LL << 50)

const vp_option vp_options[] = {
    /* model and engine */
    {"model", VP_OPT_STR, OFF(model_dir), NULL, 0, 0, NULL,
     "model folder (config.json, *.safetensors, tokenizer.model); required", 0},
    {"backend", VP_OPT_ENUM, OFF(backend), "cpu", 0, 0, "cpu|cuda",
     "compute backend", 0},
    {"device", VP_OPT_INT, OFF(device), "0", 0, 64, NULL, "CUDA device index", 0},
    {"threads", VP_OPT_INT, OFF(threads), "0", 0, 1024, NULL,
     "engine CPU threads (0 = all cores)", 0},
    {"random_weights", VP_OPT_INT, OFF(random_weights), "-1", -1, 2147483647, NULL,
     "seed: serve `vprm mkmodel --seed SEED` weights drawn by the backend (cuda) instead of "
     "loading *.safetensors (the model folder needs config.json and the tokenizer only: "
     "vprm mkmodel --scale 8b --config-only); -1 = load", 0},
    {"system_message", VP_OPT_STR, OFF(system_message), NULL, 0, 0, NULL,
     "system prompt override (unset = config.json's, else the PRM prompt)", 0},
    {"prefix_sharing", VP_OPT_BOOL, OFF(prefix_sharing), "true", 0, 0, NULL,
     "compute the common prefix of a request's responses once", 0},
    {"warmup", VP_OPT_BOOL, OFF(warmup), "true", 0, 0, NULL,
     "run one warm-up request before /ready answers 200", 0},
    {"image_cache_bytes", VP_OPT_SIZE, OFF(image_cache_bytes), "256M", 0, BIG, NULL,
     "tiles of recently seen images kept by their encoded bytes, so a re-scored image is "
     "not decoded again (0 = off)", 0},
    {"prefix_cache_bytes", VP_OPT_SIZE, OFF(prefix_cache_bytes), "auto", 0, BIG, "auto",
     "backend memory (GPU on cuda) for the keys and values of recent prompt prefixes, so a "
     "re-scored image and question cost no vision and no prefix recompute (0 = off; auto = "
     "on cuda half the GPU memory left free by the weights and working memory, at most 2^20 "
     "rows; on cpu 1G)", 0},
    {"prefix_cache_host_bytes", VP_OPT_SIZE, OFF(prefix_cache_host_bytes), "auto", 1, BIG,
     "auto", "host memory for the token ids and image tiles that key the prefix cache's "
     "entries (auto = enough for every cache row, at most a quarter of the cache's bytes, at "
     "least 256M)", 0},
    {"prefix_cache_min_tokens", VP_OPT_SIZE, OFF(prefix_cache_min_tokens), "64", 1, 1 << 24,
     NULL, "shortest prompt prefix the prefix cache stores or loads", 0},
    {"image_threads", VP_OPT_INT, OFF(image_threads), "0", 0, 64, NULL,
     "threads resizing one image (0 = min(4, cores))", 0},
    /* HTTP */
    {"host", VP_OPT_STR, OFF(host), "127.0.0.1", 0, 0, NULL,
     "address to listen on (IPv4 or IPv6 literal, or a host name)", 0},
    {"port", VP_OPT_INT, OFF(port), "8080", 0, 65535, NULL,
     "TCP port; 0 = any free port (see the \"listening on\" log line)", 0},
    {"http_threads", VP_OPT_INT, OFF(http_threads), "4", 1, 1024, NULL,
     "HTTP thread pool size (parse, image decode, tokenize run here)", 0},
    {"max_connections", VP_OPT_INT, OFF(max_connections), "512", 1, 1000000, NULL,
     "open connections at once, waiting ones included", 0},
    {"max_connections_per_ip", VP_OPT_INT, OFF(max_connections_per_ip), "0", 0, 1000000,
     NULL, "open connections per client address (0 = no limit)", 0},
    {"connection_timeout_s", VP_OPT_INT, OFF(connection_timeout_s), "30", 1, 86400, NULL,
     "idle time after which a connection is closed (slow or truncated bodies)", 0},
    {"body_timeout_s", VP_OPT_INT, OFF(body_timeout_s), "120", 1, 86400, NULL,
     "time from a request's headers to the end of its body; a slower upload is closed (a "
     "client trickling bytes keeps the idle timeout from firing)", 0},
    {"header_timeout_s", VP_OPT_INT, OFF(header_timeout_s), "30", 1, 86400, NULL,
     "time from a connection's start, or from the first byte after its previous answer, to a "
     "complete request line and headers; a slower connection is closed (checked every "
     "second)", 0},
    {"tls_cert", VP_OPT_STR, OFF(tls_cert), NULL, 0, 0, NULL,
     "PEM file of the server's certificate (its chain after it): serve HTTPS instead of "
     "HTTP (with tls_key)", 0},
    {"tls_key", VP_OPT_STR, OFF(tls_key), NULL, 0, 0, NULL,
     "PEM file of the certificate's private key (with tls_cert)", 0},
    {"tls_key_password", VP_OPT_STR, OFF(tls_key_password), NULL, 0, 0, NULL,
     "password of an encrypted tls_key", 1},
    {"tls_client_ca", VP_OPT_STR, OFF(tls_client_ca), NULL, 0, 0, NULL,
     "PEM file of the certificate authorities whose client certificates are accepted "
     "(mutual TLS; with tls_cert): every request but /health, /ready and /openapi.json must "
     "come with a certificate they issued, valid now and for client authentication (else "
     "401), and its common name names the client (cert:CN) when no API key does; X509 CRL "
     "blocks in the file, signed by its authorities, revoke the certificates they list; "
     "re-read with tls_cert on SIGHUP", 0},
    {"max_header_bytes", VP_OPT_SIZE, OFF(max_header_bytes), "28K", 4096, 1 << 20, NULL,
     "request line and headers of one request, counted as libmicrohttpd holds them (about 64 "
     "bytes more a header, cookie and query argument); over it, 431. Each open connection "
     "may hold this much memory plus 4K (at most max_connections times that)", 0},
    {"api_key", VP_OPT_STR, OFF(api_key), NULL, 0, 0, NULL,
     "require \"Authorization: Bearer KEY\" (unset = open, unless api_keys_file; /health, "
     "/ready and /openapi.json stay open)", 1},
    {"api_keys_file", VP_OPT_STR, OFF(api_keys_file), NULL, 0, 0, NULL,
     "file of API keys, one a line: KEY, NAME KEY (the name goes to the request's log "
     "line, never the key), or NAME KEY with options max_priority=normal|low (the highest "
     "priority its requests get), max_queued=N (1..16777216 jobs in flight at once; "
     "more: 429, a batch of more items: 413) and weight=N (1..1000, its share of the passes "
     "under fair_share; default 1); or, with tls_client_ca and no key, cert:NAME OPTION... "
     "lines: the grants of the client its certificate names cert:NAME; "
     "lines starting with '#' are comments; re-read with tls_cert and tls_key on SIGHUP, so "
     "keys rotate without a restart (with api_key, both are accepted)", 0},
    {"credentials_check_s", VP_OPT_INT, OFF(credentials_check_s), "0", 0, 86400, NULL,
     "seconds between checks of api_keys_file, tls_cert, tls_key and tls_client_ca for a "
     "change (a new "
     "inode, size or time, as when Kubernetes updates a mounted secret); a change reloads "
     "them as SIGHUP does (0 = on SIGHUP only)", 0},
    {"retry_after_s", VP_OPT_INT, OFF(retry_after_s), "1", 0, 3600, NULL,
     "Retry-After seconds sent with 429 and 503", 0},
    /* request limits */
    {"max_body_bytes", VP_OPT_SIZE, OFF(max_body_bytes), "64M", 1, BIG, NULL,
     "request body size; 413 above", 0},
    {"max_bodies_bytes", VP_OPT_SIZE, OFF(max_bodies_bytes), "1G", 1, BIG, NULL,
     "request bodies held at once, over every connection (the buffers they are received "
     "into, until parsed); a body whose Content-Length does not fit beside them gets 429 with "
     "Retry-After before it is read, one over this alone 413, and one that outgrows what is "
     "left while arriving is closed", 0},
    {"max_json_values", VP_OPT_SIZE, OFF(max_json_values), "2000000", 1, BIG, NULL,
     "JSON values (strings, numbers, keys, arrays, objects) of one body, counted before it is "
     "parsed (each costs about 100 bytes parsed); 413 above", 0},
    {"max_responses", VP_OPT_SIZE, OFF(max_responses), "64", 1, 1 << 20, NULL,
     "responses per request", 0},
    {"max_steps", VP_OPT_SIZE, OFF(max_steps), "64", 1, 1 << 20, NULL,
     "steps per response (after splitting and max_steps merging)", 0},
    {"max_images", VP_OPT_SIZE, OFF(max_images), "8", 0, 1024, NULL,
     "images per request", 0},
    {"max_image_bytes", VP_OPT_SIZE, OFF(max_image_bytes), "16M", 1, BIG, NULL,
     "encoded bytes per image", 0},
    {"max_image_pixels", VP_OPT_SIZE, OFF(max_image_pixels), "36000000", 1, BIG, NULL,
     "decoded pixels (width x height) per image", 0},
    {"max_image_side", VP_OPT_SIZE, OFF(max_image_side), "32768", 1, 1 << 20, NULL,
     "width and height of an image, each", 0},
    {"max_jpeg_scans", VP_OPT_SIZE, OFF(max_jpeg_scans), "100", 1, 1 << 20, NULL,
     "scans of a JPEG image (a progressive one has about 10; each is a pass over the "
     "image: 100 refinement scans of a 6000x6000 image cost about 2 s of CPU)", 0},
    {"max_tiles", VP_OPT_INT, OFF(max_tiles), "12", 1, 40, NULL,
     "upper bound of a request's max_tiles (the thumbnail is extra)", 0},
    {"max_text_bytes", VP_OPT_SIZE, OFF(max_text_bytes), "256K", 1, BIG, NULL,
     "bytes of the question or of one response as sent (its string, or its steps together; not the \\n\\n that max_steps merging puts between steps)", 0},
    {"max_request_tokens", VP_OPT_SIZE, OFF(max_request_tokens), "262144", 1, BIG, NULL,
     "prompt tokens of one request, summed over its responses", 0},
    {"max_batch_requests", VP_OPT_SIZE, OFF(max_batch_requests), "256", 1, 1 << 20, NULL,
     "items of one POST /v1/score/batch", 0},
    /* scheduler */
    {"max_queue", VP_OPT_SIZE, OFF(max_queue), "1024", 1, 1 << 24, NULL,
     "jobs waiting for the engine; 429 with Retry-After while this many wait (a request "
     "admitted below it may carry the queue past it by its own size; \"high\"-priority "
     "jobs are counted apart, against a bound of their own of the same size)", 0},
    {"max_queued_tiles", VP_OPT_SIZE, OFF(max_queued_tiles), "1024", 1, 1 << 24, NULL,
     "image tiles held by waiting jobs (~0.6 MB each); a request with images gets 429 with "
     "Retry-After while this many wait (one admitted below it may carry the queue past it; "
     "\"high\"-priority jobs' tiles are counted apart, against a bound of their own), 413 "
     "when its images alone make more; both judged from the images' headers, before any "
     "is decoded", 0},
    {"batch_tokens", VP_OPT_SIZE, OFF(batch_tokens), "16384", 1, BIG, NULL,
     "token budget of one packed engine pass; a request needing more gets 413", 0},
    {"batch_tiles", VP_OPT_SIZE, OFF(batch_tiles), "64", 1, 1 << 20, NULL,
     "image tile budget of one packed engine pass", 0},
    {"queue_timeout_ms", VP_OPT_INT, OFF(queue_timeout_ms), "60000", 0, 86400000, NULL,
     "a job queued longer is answered 503 without running, unless a job of its request "
     "already ran (0 = no limit)", 0},
    {"priority_boost_ms", VP_OPT_INT, OFF(priority_boost_ms), "10000", 0, 86400000, NULL,
     "a request's \"priority\": \"high\" goes ahead of normal work queued up to this long "
     "before it, \"low\" behind normal work queued up to this long after it (a bounded "
     "head start: nothing waits for ever; keep it under half of queue_timeout_ms, or low "
     "work can expire under a steady backlog; 0 = priorities ignored)", 0},
    {"fair_share", VP_OPT_BOOL, OFF(fair_share), "true", 0, 0, NULL,
     "share the passes between clients (API keys' names, client certificates' names; "
     "requests without either are one client) while several have work queued, each in "
     "proportion to its key's weight=N: the jobs of one priority are taken by start-time "
     "fair queueing of their tokens, so one client's backlog does not hold back another's "
     "requests (false: in arrival order)", 0},
    {"exit_on_device_failure", VP_OPT_BOOL, OFF(exit_on_device_failure), "true", 0, 0, NULL,
     "exit with status 3 when the compute device fails for good (a lost GPU context), so a "
     "supervisor restarts the server; false: keep answering, /ready and scoring 503", 0},
    {"pass_timeout_s", VP_OPT_INT, OFF(pass_timeout_s), "-1", -1, 86400, NULL,
     "seconds one backend forward call may run before the device is taken for hung: /ready answers "
     "503 meanwhile and, with exit_on_device_failure, the process exits 3 at once (a hung "
     "GPU never returns; -1 = auto: 120 on cuda, off on cpu, whose passes on a large model "
     "take minutes; 0 = off)", 0},
    {"cancel_on_disconnect", VP_OPT_BOOL, OFF(cancel_on_disconnect), "true", 0, 0, NULL,
     "cancel a request's queued or running work when its client closes the connection "
     "before the answer (a client that only closes its sending side, a TCP half-close, "
     "counts as gone); false: always compute and answer", 0},
    {"drain_timeout_s", VP_OPT_INT, OFF(drain_timeout_s), "60", 0, 86400, NULL,
     "on SIGTERM/SIGINT: time to finish queued work before exiting", 0},
    {"drain_answer_timeout_s", VP_OPT_INT, OFF(drain_answer_timeout_s), "5", 0, 86400, NULL,
     "on SIGTERM/SIGINT, once the queued work is done: time for answers still being written "
     "(a client that reads slowly or not at all) before their connections are closed "
     "(within drain_timeout_s)", 0},
    /* image URLs */
    {"allow_image_urls", VP_OPT_BOOL, OFF(allow_image_urls), "false", 0, 0, NULL,
     "fetch http(s):// image URLs (off: such requests get 400); fetched by their own "
     "threads, not the HTTP threads, while the request's connection waits", 0},
    {"url_fetch_threads", VP_OPT_INT, OFF(url_fetch_threads), "8", 1, 1024, NULL,
     "image URL fetch threads: requests fetching their images at once (one request's images "
     "are fetched one after another)", 0},
    {"url_fetch_queue", VP_OPT_SIZE, OFF(url_fetch_queue), "64", 0, 1 << 20, NULL,
     "requests with image URLs waiting for a fetch thread; one more gets 429 with "
     "Retry-After", 0},
    {"url_max_bytes", VP_OPT_SIZE, OFF(url_max_bytes), "16M", 1, BIG, NULL,
     "bytes fetched per image URL (and at most max_image_bytes)", 0},
    {"url_max_length", VP_OPT_SIZE, OFF(url_max_length), "8K", 16, 1 << 20, NULL,
     "characters of one image URL; a longer one gets 413 before anything is fetched", 0},
    {"url_max_per_request", VP_OPT_SIZE, OFF(url_max_per_request), "64", 1, 1 << 20, NULL,
     "different image URLs in one HTTP request (a batch's items together); more: 413 before "
     "anything is fetched. A URL repeated is fetched once", 0},
    {"url_max_request_bytes", VP_OPT_SIZE, OFF(url_max_request_bytes), "64M", 1, BIG, NULL,
     "bytes of image URLs held for one HTTP request, a repeated URL counted each time (as "
     "max_body_bytes bounds images sent inline); past it, 413", 0},
    {"url_timeout_ms", VP_OPT_INT, OFF(url_timeout_ms), "10000", 1, 600000, NULL,
     "time limit of one image URL fetch", 0},
    {"url_request_timeout_ms", VP_OPT_INT, OFF(url_request_timeout_ms), "30000", 1, 3600000,
     NULL,
     "time limit of all the image URL fetches of one HTTP request (fetched one after another), "
     "its wait for a fetch thread included: the fetches not started by then fail (429 when "
     "over half of it went to waiting for a fetch thread: the threads were busy)", 0},
    {"url_max_redirects", VP_OPT_INT, OFF(url_max_redirects), "3", 0, 20, NULL,
     "redirects followed per image URL", 0},
    {"url_ports", VP_OPT_STR, OFF(url_ports), "80,443", 0, 0, NULL,
     "ports an image URL and each of its redirects may connect to: ports and ranges "
     "separated by commas (\"80,443,8000-8999\"), or \"any\"", 0},
    {"url_allow_private", VP_OPT_BOOL, OFF(url_allow_private), "false", 0, 0, NULL,
     "allow image URLs that resolve to loopback/private/link-local addresses (for tests and "
     "closed networks: clients can then reach internal services; logged as a warning)", 0},
    /* logs */
    {"log_level", VP_OPT_ENUM, OFF(log_level), "info", 0, 0, "debug|info|warn|error",
     "lowest level logged", 0},
    {"log_format", VP_OPT_ENUM, OFF(log_format), "text", 0, 0, "text|json",
     "log lines as text (\"TIME LEVEL [request id] message\") or as one JSON object each "
     "(time, level, request_id, message; a request's line has its fields instead: method, "
     "path, status, responses, tokens, ms, ...)", 0},
    {"log_bodies", VP_OPT_BOOL, OFF(log_bodies), "false", 0, 0, NULL,
     "also log the first 512 bytes of each request body (debug aid)", 0},
};

const size_t vp_n_options = sizeof vp_options / sizeof vp_options[0];

const vp_option *vp_option_find(const char *name)
{
    for (size_t i = 0; i < vp_n_options; i++)
        if (!strcmp(vp_options[i].name, name))
            return &vp_options[i];
    return NULL;
}
