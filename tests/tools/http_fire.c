/* Fires N identical score requests at once and checks how they were answered.
 *
 *   http_fire BASE_URL API_KEY N WIDTH HEIGHT MAX_TILES [--min-200 A] [--min-429 B]
 *             [--min-503 C] [--only 200,429,503] [--delay-ms D] [--distinct 1]
 *
 * The body has one random-content PNG of WIDTH x HEIGHT (0 = text-only) scored with
 * max_tiles MAX_TILES. With --distinct 1 every request has its own image, so the server
 * can share neither vision nor prefix work between them (real work to drain). Every request must get an HTTP answer (no transport error);
 * every 429/503 must carry Retry-After and the error type of API.md. */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/bench/bench.h"
#include "server/bench/http_client.h"
#include "tests/unit/check.h"

static char url[512], auth[256];
static const char *headers[] = {auth, "Content-Type: application/json", NULL};
static char **bodies; /* [n]: one per shot, or all the same */
static int delay_ms;

typedef struct shot {
    int id;
    long status;
    int bad_headers;
    char error[300];
} shot;

static void *fire(void *arg)
{
    shot *s = arg;
    if (delay_ms)
        usleep((useconds_t)delay_ms * 1000u * (useconds_t)(s->id % 2));
    vp_http_reply r;
    vp_http_request("POST", url, bodies[s->id], strlen(bodies[s->id]), headers, 300, &r);
    s->status = r.status;
    if (r.status == 0)
        snprintf(s->error, sizeof s->error, "transport: %s", r.error);
    else if (r.status != 200)
        snprintf(s->error, sizeof s->error, "%.290s", r.body);
    if (r.status == 429 || r.status == 503) {
        char buf[64];
        json_error_t je;
        json_t *j = json_loads(r.body, 0, &je);
        const char *type = json_string_value(json_object_get(json_object_get(j, "error"), "type"));
        const char *want = r.status == 429 ? "queue_full" : "unavailable";
        if (!vp_http_header(&r, "Retry-After", buf, sizeof buf) || !type || strcmp(type, want))
            s->bad_headers = 1;
        json_decref(j);
    }
    vp_http_reply_free(&r);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: http_fire BASE_URL API_KEY N WIDTH HEIGHT MAX_TILES [--min-200 A] "
                        "[--min-429 B] [--min-503 C] [--only LIST] [--delay-ms D]\n");
        return 2;
    }
    snprintf(url, sizeof url, "%s/v1/score", argv[1]);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", argv[2]);
    int n = atoi(argv[3]);
    uint32_t w = (uint32_t)atoi(argv[4]), h = (uint32_t)atoi(argv[5]);
    int max_tiles = atoi(argv[6]);
    int min200 = 0, min429 = 0, min503 = 0, distinct = 0;
    const char *only = "200,429,503";
    for (int i = 7; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--min-200"))
            min200 = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--min-429"))
            min429 = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--min-503"))
            min503 = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--only"))
            only = argv[i + 1];
        else if (!strcmp(argv[i], "--delay-ms"))
            delay_ms = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--distinct"))
            distinct = atoi(argv[i + 1]);
    }
    if (n < 1)
        return 2;
    bodies = calloc((size_t)n, sizeof *bodies);
    for (int k = 0; k < n; k++) {
        if (k > 0 && !distinct) {
            bodies[k] = bodies[0];
            continue;
        }
        char *img = NULL;
        if (w && h) {
            uint8_t *png;
            size_t len;
            vp_error err;
            if (vp_png_random(w, h, 11 + (uint64_t)k, &png, &len, &err))
                return 1;
            img = vp_data_url("image/png", png, len);
            free(png);
        }
        if (asprintf(&bodies[k],
                     "{\"question\": \"Which step is wrong?\"%s%s%s, \"max_tiles\": %d, \"responses\": "
                     "[\"First add 2 and 2.\\n\\nThat gives 4.\", \"First add 2 and 2.\\n\\nThat "
                     "gives 5.\"]}",
                     img ? ", \"image\": \"" : "", img ? img : "", img ? "\"" : "", max_tiles) < 0)
            return 1;
        free(img);
    }
    shot *s = calloc((size_t)n, sizeof *s);
    pthread_t *th = calloc((size_t)n, sizeof *th);
    for (int i = 0; i < n; i++) {
        s[i].id = i;
        pthread_create(&th[i], NULL, fire, &s[i]);
    }
    int c200 = 0, c429 = 0, c503 = 0, other = 0, transport = 0, bad = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        c200 += s[i].status == 200;
        c429 += s[i].status == 429;
        c503 += s[i].status == 503;
        transport += s[i].status == 0;
        bad += s[i].bad_headers;
        char code[8];
        snprintf(code, sizeof code, "%ld", s[i].status);
        if (s[i].status && !strstr(only, code))
            other++;
    }
    printf("fired %d: 200=%d 429=%d 503=%d transport=%d outside {%s}=%d\n", n, c200, c429, c503,
           transport, only, other);
    for (int st = 0; st < 3; st++) { /* one example of each non-200 answer */
        long want[3] = {429, 503, 0};
        for (int i = 0; i < n; i++)
            if (s[i].status == want[st] && s[i].error[0]) {
                printf("  e.g. %ld: %s\n", want[st], s[i].error);
                break;
            }
    }
    CHECK_MSG(transport == 0, "%d requests got no HTTP answer", transport);
    CHECK_MSG(other == 0, "%d answers outside {%s}", other, only);
    CHECK_MSG(bad == 0, "%d 429/503 answers without Retry-After or with the wrong type", bad);
    CHECK_MSG(c200 >= min200, "%d x 200 < %d", c200, min200);
    CHECK_MSG(c429 >= min429, "%d x 429 < %d", c429, min429);
    CHECK_MSG(c503 >= min503, "%d x 503 < %d", c503, min503);
    free(s);
    free(th);
    for (int k = 0; k < n; k++)
        if (k == 0 || distinct)
            free(bodies[k]);
    free(bodies);
    return check_summary("http_fire");
}
