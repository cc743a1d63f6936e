/* Usage per API key name (server/key_usage.c): counts by name and status, the scored
 * results' sums, the Prometheus text, the name bound, and 4 threads counting at once. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/key_usage.h"
#include "tests/unit/check.h"

static vp_key_usage *shared;

static void *hammer(void *arg)
{
    const char *name = arg;
    vp_score_result r = {.n_responses = 3};
    r.usage.prompt_tokens = 7, r.usage.computed_tokens = 5, r.usage.image_tiles = 2;
    for (int i = 0; i < 10000; i++) {
        vp_key_usage_request(shared, name, i % 10 ? 200 : 429);
        if (i % 10)
            vp_key_usage_result(shared, name, &r);
    }
    return NULL;
}

/* The text vp_key_usage_write gives (malloc'd). */
static char *written(vp_key_usage *u)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f)
        return NULL;
    vp_key_usage_write(u, f);
    fclose(f);
    return buf;
}

/* Whether text holds line (a whole line). */
static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return 1;
    return 0;
}

int main(void)
{
    vp_key_usage *u = vp_key_usage_new();
    CHECK(u != NULL);
    vp_key_usage_counts c = vp_key_usage_get(u, "alice");
    CHECK(c.requests == 0 && c.responses_scored == 0 && vp_key_usage_names(u) == 0);
    vp_key_usage_request(u, "alice", 200);
    vp_key_usage_request(u, "alice", 200);
    vp_key_usage_request(u, "alice", 429);
    vp_key_usage_request(u, "alice", 0); /* ended without a response */
    vp_key_usage_request(u, "bob.ci@team:1", 400);
    vp_score_result r = {.n_responses = 8};
    r.usage.prompt_tokens = 31248, r.usage.computed_tokens = 6139, r.usage.image_tiles = 13;
    r.timing.queue = 1234.5678; /* ms: 1,234,568 us */
    vp_key_usage_result(u, "alice", &r);
    r.n_responses = 2, r.usage.prompt_tokens = 100, r.usage.computed_tokens = 61;
    r.usage.image_tiles = 0;
    r.timing.queue = 0.4;
    vp_key_usage_result(u, "alice", &r);
    r.timing.queue = -1; /* not measured: adds nothing */
    vp_key_usage_result(u, "bob.ci@team:1", &r);
    r.n_responses = 0, r.usage.prompt_tokens = r.usage.computed_tokens = 0;
    r.timing.queue = 5e6; /* 5,000 s */
    vp_key_usage_result(u, "carol", &r);
    c = vp_key_usage_get(u, "alice");
    CHECK(c.requests == 4);
    CHECK(c.responses_scored == 10 && c.prompt_tokens == 31348);
    CHECK(c.computed_tokens == 6200 && c.image_tiles == 13);
    CHECK(c.queue_us == 1234968 && c.results_scored == 2);
    c = vp_key_usage_get(u, "bob.ci@team:1");
    CHECK(c.requests == 1 && c.responses_scored == 2 && c.computed_tokens == 61 &&
          c.queue_us == 0);
    c = vp_key_usage_get(u, "alic"); /* no prefix or other name matches */
    CHECK(c.requests == 0);
    CHECK(vp_key_usage_names(u) == 3);

    char *t = written(u);
    CHECK(t != NULL);
    if (t) {
        CHECK(has_line(t, "# TYPE vprm_key_requests_total counter"));
        CHECK(has_line(t, "vprm_key_requests_total{key=\"alice\",status=\"200\"} 2"));
        CHECK(has_line(t, "vprm_key_requests_total{key=\"alice\",status=\"429\"} 1"));
        CHECK(has_line(t, "vprm_key_requests_total{key=\"alice\",status=\"closed\"} 1"));
        CHECK(has_line(t, "vprm_key_requests_total{key=\"bob.ci@team:1\",status=\"400\"} 1"));
        CHECK(has_line(t, "vprm_key_responses_scored_total{key=\"alice\"} 10"));
        CHECK(has_line(t, "vprm_key_responses_scored_total{key=\"bob.ci@team:1\"} 2"));
        CHECK(has_line(t, "# TYPE vprm_key_queue_seconds_total counter"));
        CHECK(has_line(t, "vprm_key_queue_seconds_total{key=\"alice\"} 1.234968"));
        CHECK(has_line(t, "vprm_key_results_scored_total{key=\"alice\"} 2"));
        CHECK(has_line(t, "vprm_key_results_scored_total{key=\"carol\"} 1"));
        CHECK(has_line(t, "vprm_key_queue_seconds_total{key=\"bob.ci@team:1\"} 0.000000"));
        CHECK(has_line(t, "vprm_key_queue_seconds_total{key=\"carol\"} 5000.000000"));
        CHECK(has_line(t, "vprm_key_prompt_tokens_total{key=\"alice\"} 31348"));
        CHECK(has_line(t, "vprm_key_tokens_computed_total{key=\"alice\"} 6200"));
        CHECK(has_line(t, "vprm_key_image_tiles_total{key=\"alice\"} 13"));
        CHECK(has_line(t, "# TYPE vprm_key_image_tiles_total counter"));
        /* names in the order first counted */
        CHECK(strstr(t, "{key=\"alice\"} 10") < strstr(t, "{key=\"bob.ci@team:1\"} 2"));
    }
    free(t);

    /* more distinct statuses than slots: those past the first 23 counted together as
     * "other", and no series shown once is relabelled later */
    for (int s = 0; s < VP_KEY_USAGE_STATUSES; s++)
        vp_key_usage_request(u, "carol", 300 + s);
    char *before = written(u);
    for (int s = VP_KEY_USAGE_STATUSES; s < VP_KEY_USAGE_STATUSES + 5; s++)
        vp_key_usage_request(u, "carol", 300 + s);
    c = vp_key_usage_get(u, "carol");
    CHECK(c.requests == VP_KEY_USAGE_STATUSES + 5);
    t = written(u);
    if (t && before) {
        char line[128];
        snprintf(line, sizeof line, "vprm_key_requests_total{key=\"carol\",status=\"%d\"} 1",
                 300 + VP_KEY_USAGE_STATUSES - 2);
        CHECK(has_line(t, line)); /* the last status with a slot of its own */
        snprintf(line, sizeof line, "vprm_key_requests_total{key=\"carol\",status=\"%d\"}",
                 300 + VP_KEY_USAGE_STATUSES - 1);
        CHECK(!strstr(t, line) && !strstr(before, line)); /* the 24th: "other" from the start */
        CHECK(has_line(before, "vprm_key_requests_total{key=\"carol\",status=\"other\"} 1"));
        CHECK(has_line(t, "vprm_key_requests_total{key=\"carol\",status=\"other\"} 6"));
        for (const char *p = strstr(before, "vprm_key_requests_total{key=\"carol\""); p;
             p = strstr(p + 1, "vprm_key_requests_total{key=\"carol\"")) {
            size_t n = strcspn(p, "}") + 1;
            CHECK(memmem(t, strlen(t), p, n) != NULL); /* every series still there */
        }
    }
    free(before);
    free(t);
    vp_key_usage_free(u);

    /* the name bound: past it, new names are counted together under "" */
    u = vp_key_usage_new();
    char name[32];
    for (int i = 0; i < VP_KEY_USAGE_NAMES; i++) {
        snprintf(name, sizeof name, "k%d", i);
        vp_key_usage_request(u, name, 200);
    }
    CHECK(vp_key_usage_names(u) == VP_KEY_USAGE_NAMES);
    vp_key_usage_request(u, "late1", 200);
    vp_key_usage_request(u, "late2", 503);
    vp_key_usage_request(u, "k7", 200); /* a counted name keeps its own entry */
    CHECK(vp_key_usage_names(u) == VP_KEY_USAGE_NAMES + 1);
    CHECK(vp_key_usage_get(u, "k7").requests == 2);
    snprintf(name, sizeof name, "k%d", VP_KEY_USAGE_NAMES - 1);
    CHECK(vp_key_usage_get(u, name).requests == 1);
    CHECK(vp_key_usage_get(u, "late1").requests == 0);
    t = written(u);
    if (t) {
        CHECK(has_line(t, "vprm_key_requests_total{key=\"\",status=\"200\"} 1"));
        CHECK(has_line(t, "vprm_key_requests_total{key=\"\",status=\"503\"} 1"));
        CHECK(!strstr(t, "late"));
    }
    free(t);
    vp_key_usage_free(u);

    /* 4 threads on 2 names: every count lands */
    shared = vp_key_usage_new();
    pthread_t th[4];
    const char *names[4] = {"x", "y", "x", "y"};
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, hammer, (void *)names[i]);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
        c = vp_key_usage_get(shared, names[i]);
        CHECK(c.requests == 20000);
        CHECK(c.responses_scored == 3 * 18000 && c.prompt_tokens == 7 * 18000);
        CHECK(c.computed_tokens == 5 * 18000 && c.image_tiles == 2 * 18000);
    }
    t = written(shared);
    if (t) {
        CHECK(has_line(t, "vprm_key_requests_total{key=\"x\",status=\"429\"} 2000"));
        CHECK(has_line(t, "vprm_key_requests_total{key=\"y\",status=\"200\"} 18000"));
    }
    free(t);
    vp_key_usage_free(shared);
    return check_summary("test_key_usage");
}
