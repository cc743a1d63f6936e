/* The pass watchdog's clock (vp_engine_pass_ms, read by --pass-timeout-s): 0 while no
 * backend call runs, the running call's age while one does (the CPU backend's hook
 * VPRM_TEST_PASS_STALL_MS makes each pass sleep first, as a hung device never returns),
 * and 0 again once it returned. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "tests/unit/check.h"
#include "tests/unit/engine_test_util.h"

typedef struct run_arg {
    vp_engine *e;
    vp_job *job;
    int rc;
} run_arg;

static void *run(void *p)
{
    run_arg *a = p;
    vp_error err = {0};
    a->rc = vp_engine_run(a->e, &a->job, 1, &err);
    return NULL;
}

int main(void)
{
    char dir[] = "/tmp/vprm-test-watchdog-XXXXXX";
    vp_engine_options opt;
    if (test_tiny_model(dir, 7, &opt))
        return 1;
    const char *resp[] = {"Step 1: add.\\n\\nStep 2: 4."};
    char *body = test_request_json(NULL, "What is 2 + 2?", 6, resp, 1);
    vp_error err = {0};
    vp_engine *e = NULL;
    setenv("VPRM_TEST_PASS_STALL_MS", "400", 1);
    CHECK_MSG(vp_engine_open(&opt, &e, &err) == 0, "%s", err.message);
    unsetenv("VPRM_TEST_PASS_STALL_MS");
    CHECK(vp_engine_pass_ms(NULL) == 0.0);
    if (e) {
        CHECK(vp_engine_pass_ms(e) == 0.0);
        run_arg a = {e, test_prepare(e, body), -1};
        CHECK(a.job != NULL);
        if (!a.job) {
            vp_engine_close(e);
            free(body);
            return check_summary("test_engine_watchdog");
        }
        pthread_t th;
        pthread_create(&th, NULL, run, &a);
        double seen = 0;
        for (int i = 0; i < 200 && seen < 150.0; i++) { /* until the call is 150 ms old */
            usleep(5000);
            seen = vp_engine_pass_ms(e);
        }
        CHECK_MSG(seen >= 150.0 && seen < 5000.0, "the running call's age: %.1f ms", seen);
        if (seen < 300.0) { /* 100 ms before the 400 ms call returns: still growing */
            usleep(50000);
            CHECK(vp_engine_pass_ms(e) >= seen + 40.0);
        }
        pthread_join(th, NULL);
        CHECK(a.rc == 0);
        CHECK(vp_engine_pass_ms(e) == 0.0);
        vp_job_free(a.job);
        vp_engine_close(e);
    }
    free(body);
    test_remove_dir(dir);
    return check_summary("test_engine_watchdog");
}
