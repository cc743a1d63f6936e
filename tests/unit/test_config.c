/* config/: defaults, precedence (defaults < file < environment < flags), refusals that
 * name the option, help text listing every option with its environment name and default. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "config/options.h"
#include "config/port_list.h"
#include "tests/unit/check.h"

static int load(vp_config *c, int argc, char **argv, char **env, vp_error *err)
{
    vp_config_default(c);
    FILE *devnull = fopen("/dev/null", "w");
    int rc = vp_config_load(c, argc, argv, env, devnull, err);
    fclose(devnull);
    return rc;
}

static void test_defaults(void)
{
    vp_config c;
    vp_config_default(&c);
    CHECK(c.port == 8080);
    CHECK(!strcmp(c.host, "127.0.0.1"));
    CHECK(!strcmp(c.backend, "cpu"));
    CHECK(c.max_body_bytes == 64u << 20);
    CHECK(c.max_text_bytes == 256u << 10);
    CHECK(c.prefix_sharing && c.warmup && !c.allow_image_urls && !c.url_allow_private);
    CHECK(c.api_key == NULL && c.model_dir == NULL && c.system_message == NULL);
    CHECK(c.http_threads == 4 && c.max_queue == 1024 && c.batch_tokens == 16384);
    CHECK(c.url_fetch_threads == 8 && c.url_fetch_queue == 64);
    /* every default is accepted by its own parser (a typo there would be silent) */
    for (size_t i = 0; i < vp_n_options; i++) {
        const vp_option *o = &vp_options[i];
        if (!o->def)
            continue;
        vp_error err;
        CHECK_MSG(vp_config_set(&c, o->name, o->def, "test", &err) == 0, "default of %s: %s",
                  o->name, err.message);
    }
    vp_error err;
    /* model is the one required option */
    CHECK(vp_config_validate(&c, &err) == -1 && !strcmp(err.param, "model"));
    vp_config_free(&c);
}

static void test_precedence(void)
{
    char path[] = "/tmp/vprm-test-config-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    const char *json = "{\"model\": \"/m/file\", \"port\": 1111, \"max_queue\": 7,"
                       " \"http_threads\": 3, \"allow_image_urls\": true, \"system_message\": \"S\","
                       " \"max_body_bytes\": \"32M\"}";
    CHECK(write(fd, json, strlen(json)) == (ssize_t)strlen(json));
    close(fd);

    char cfgflag[64];
    snprintf(cfgflag, sizeof cfgflag, "--config=%s", path);
    char *env[] = {"VPRM_PORT=2222", "VPRM_MAX_QUEUE=8", "VPRM_TMP=/ignored/by/config",
                   "VPRM_API_KEY=secretkey123", "PATH=/bin", NULL};
    char *argv[] = {"serve", cfgflag, "--port", "3333", "--no-allow-image-urls", NULL};
    vp_config c;
    vp_error err;
    int rc = load(&c, 5, argv, env, &err);
    CHECK_MSG(rc == 0, "%s", err.message);
    CHECK(c.port == 3333);          /* flag beats env beats file */
    CHECK(c.max_queue == 8);        /* env beats file */
    CHECK(c.http_threads == 3);     /* file beats default */
    CHECK(!c.allow_image_urls);     /* flag beats file */
    CHECK(c.max_body_bytes == 32u << 20);
    CHECK(c.system_message && !strcmp(c.system_message, "S"));
    CHECK(c.model_dir && !strcmp(c.model_dir, "/m/file"));
    CHECK(c.api_key && !strcmp(c.api_key, "secretkey123"));

    /* the dump masks the key */
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    vp_config_dump(&c, mem);
    fclose(mem);
    CHECK(buf && !strstr(buf, "secretkey123") && strstr(buf, "api_key=(set, 12 characters)"));
    CHECK(buf && strstr(buf, "port=3333\n"));
    free(buf);
    vp_config_free(&c);

    /* the config file can also come from VPRM_CONFIG */
    char envcfg[128];
    snprintf(envcfg, sizeof envcfg, "VPRM_CONFIG=%s", path);
    char *env2[] = {envcfg, NULL};
    char *argv2[] = {"serve", NULL};
    rc = load(&c, 1, argv2, env2, &err);
    CHECK_MSG(rc == 0 && c.port == 1111, "%s", err.message);
    vp_config_free(&c);
    /* an option's value spelled "--config" is that value, not the config flag: the file
     * still comes from VPRM_CONFIG, and no file named "--model" is opened */
    char *argv3[] = {"serve", "--system-message", "--config", "--model", "/m/flag", NULL};
    rc = load(&c, 5, argv3, env2, &err);
    CHECK_MSG(rc == 0, "%s", err.message);
    CHECK(rc == 0 && c.port == 1111 && c.system_message && !strcmp(c.system_message, "--config") &&
          c.model_dir && !strcmp(c.model_dir, "/m/flag"));
    vp_config_free(&c);
    unlink(path);
}

static void expect_refusal(int argc, char **argv, char **env, const char *param,
                           const char *words)
{
    vp_config c;
    vp_error err;
    memset(&err, 0, sizeof err);
    int rc = load(&c, argc, argv, env, &err);
    CHECK_MSG(rc == -1, "accepted (expected refusal naming %s)", param);
    CHECK_MSG(!strcmp(err.param, param), "param '%s' (expected '%s'): %s", err.param, param,
              err.message);
    CHECK_MSG(strstr(err.message, words) != NULL, "message '%s' lacks '%s'", err.message, words);
    vp_config_free(&c);
}

static void test_refusals(void)
{
    char *noenv[] = {NULL};
    char *a1[] = {"serve", "--model", "m", "--port", "70000", NULL};
    expect_refusal(5, a1, noenv, "port", "outside [0, 65535]");
    char *a2[] = {"serve", "--model", "m", "--max-body-bytes", "lots", NULL};
    expect_refusal(5, a2, noenv, "max_body_bytes", "is not a size");
    char *a3[] = {"serve", "--model", "m", "--bogus", "1", NULL};
    expect_refusal(5, a3, noenv, "--bogus", "unknown option");
    char *a4[] = {"serve", "--model", "m", "--backend", "tpu", NULL};
    expect_refusal(5, a4, noenv, "backend", "not one of cpu|cuda");
    char *a5[] = {"serve", "--model", "m", "--warmup=maybe", NULL};
    expect_refusal(4, a5, noenv, "warmup", "not a boolean");
    char *a6[] = {"serve", "--model", "m", "--http-threads", "0", NULL};
    expect_refusal(5, a6, noenv, "http_threads", "outside [1, 1024]");
    char *a7[] = {"serve", "--model", "m", "--port", NULL};
    expect_refusal(4, a7, noenv, "port", "needs a value");
    char *a8[] = {"serve", "--model", "m", "--api-key", "short", NULL};
    expect_refusal(5, a8, noenv, "api_key", "at least 8");
    char *a8b[] = {"serve", "--model", "m", "--api-key", "secret key", NULL};
    expect_refusal(5, a8b, noenv, "api_key", "byte 0x20 at offset 6");
    char *a8c[] = {"serve", "--model", "m", "--api-key", "cl\xc3\xa9-secr\xc3\xa8te", NULL};
    expect_refusal(5, a8c, noenv, "api_key", "non-ASCII");
    char *a9[] = {"serve", "--model", "m", "--max-image-bytes", "128M", NULL};
    expect_refusal(5, a9, noenv, "max_image_bytes", "exceeds max_body_bytes");
    char *a10[] = {"serve", "--model", "m", "--port", "12x", NULL};
    expect_refusal(5, a10, noenv, "port", "not an integer");
    char *e1[] = {"VPRM_QUEUE_TIMEOUT_MS=-5", NULL};
    char *a11[] = {"serve", "--model", "m", NULL};
    expect_refusal(3, a11, e1, "queue_timeout_ms", "environment VPRM_QUEUE_TIMEOUT_MS");
    char *e2[] = {"VPRM_MAX_QUEUE=", NULL};
    expect_refusal(3, a11, e2, "max_queue", "empty value");

    /* config file: bad JSON, unknown key, wrong type */
    const char *bodies[] = {"{\"port\": ", "{\"prot\": 1}", "{\"port\": [1]}", "[1]",
                            "{\"port\": 1.5}", "{\"max-responses\": 5}", "{\"max-bogus\": 5}"};
    const char *params[] = {"config", "prot", "port", "config", "port", "max-responses",
                            "max-bogus"};
    const char *words[] = {"invalid JSON", "unknown option 'prot'", "expected an integer",
                           "must be a JSON object", "expected an integer",
                           "written with '_': \"max_responses\"", "see vprm serve --help"};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        vp_config c;
        vp_error err;
        vp_config_default(&c);
        int rc = vp_config_apply_json_text(&c, bodies[i], strlen(bodies[i]), "config file t",
                                           &err);
        CHECK_MSG(rc == -1 && !strcmp(err.param, params[i]) && strstr(err.message, words[i]),
                  "body %zu: rc %d param '%s' message '%s'", i, rc, err.param, err.message);
        vp_config_free(&c);
    }
    char *a12[] = {"serve", "--config", "/nonexistent/vprm.json", NULL};
    expect_refusal(3, a12, noenv, "config", "/nonexistent/vprm.json");
}

static void test_values(void)
{
    vp_config c;
    vp_error err;
    char *noenv[] = {NULL};
    char *argv[] = {"serve",        "--model=/x",       "--max-body-bytes", "1KiB",
                    "--batch-tiles", "3",                "--warmup=off",     "--log-bodies",
                    "--port",        "0",                "--max-image-bytes", "512",
                    "--max-text-bytes", "1K", NULL};
    int rc = load(&c, 14, argv, noenv, &err);
    CHECK_MSG(rc == 0, "%s", err.message);
    CHECK(c.max_body_bytes == 1024 && c.batch_tiles == 3 && !c.warmup && c.log_bodies);
    CHECK(c.port == 0 && c.max_text_bytes == 1024);
    vp_config_free(&c);

    char *h[] = {"serve", "--help", NULL};
    vp_config_default(&c);
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    rc = vp_config_load(&c, 2, h, noenv, mem, &err);
    fclose(mem);
    CHECK(rc == 1);
    /* every option appears with its flag, environment name and default */
    for (size_t i = 0; i < vp_n_options; i++) {
        const vp_option *o = &vp_options[i];
        char flag[80], env[80], def[120];
        snprintf(flag, sizeof flag, "--%s", o->name);
        snprintf(env, sizeof env, "VPRM_%s", o->name);
        for (char *p = flag; *p; p++)
            if (*p == '_')
                *p = '-';
        for (char *p = env; *p; p++)
            if (*p >= 'a' && *p <= 'z')
                *p = (char)(*p - 'a' + 'A');
        snprintf(def, sizeof def, "default: %s", o->def ? o->def : "(unset)");
        CHECK_MSG(buf && strstr(buf, flag) && strstr(buf, env) && strstr(buf, def),
                  "help lacks %s / %s / %s", flag, env, def);
    }
    free(buf);
    vp_config_free(&c);
}

/* "auto" sizes: the default of both prefix-cache sizes, accepted from every source in any
 * case, shown as "auto", and refused by sizes that have no automatic value. */
static void test_auto_sizes(void)
{
    vp_config c;
    vp_error err;
    vp_config_default(&c);
    CHECK(c.prefix_cache_bytes == VP_SIZE_AUTO && c.prefix_cache_host_bytes == VP_SIZE_AUTO);
    vp_config_free(&c);

    char *env[] = {"VPRM_PREFIX_CACHE_HOST_BYTES=AUTO", NULL};
    char *a1[] = {"serve", "--model", "m", "--prefix-cache-bytes", "3G", NULL};
    CHECK_MSG(load(&c, 5, a1, env, &err) == 0, "%s", err.message);
    CHECK(c.prefix_cache_bytes == (size_t)3 << 30 && c.prefix_cache_host_bytes == VP_SIZE_AUTO);
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    vp_config_dump(&c, mem);
    fclose(mem);
    CHECK(buf && strstr(buf, "prefix_cache_host_bytes=auto\n") &&
          strstr(buf, "prefix_cache_bytes=3221225472\n"));
    free(buf);
    vp_config_free(&c);

    char *noenv[] = {NULL};
    char *a2[] = {"serve", "--model", "m", "--prefix-cache-bytes=3G", "--prefix-cache-bytes=auto",
                  NULL};
    CHECK_MSG(load(&c, 5, a2, noenv, &err) == 0, "%s", err.message);
    CHECK(c.prefix_cache_bytes == VP_SIZE_AUTO);
    vp_config_free(&c);

    char *a3[] = {"serve", "--model", "m", "--max-body-bytes", "auto", NULL};
    expect_refusal(5, a3, noenv, "max_body_bytes", "is not a size (e.g. 1048576, 64K, 16M, 2G)");
    char *a4[] = {"serve", "--model", "m", "--prefix-cache-bytes", "autos", NULL};
    expect_refusal(5, a4, noenv, "prefix_cache_bytes", "or auto");
}

/* url_ports: the lists written, the lists refused with their reason, membership against
 * a plain walk over every port. */
static void test_port_lists(void)
{
    static const char *const good[] = {"any", " any ", "80", "80,443", " 80 , 443 ",
                                       "8000-8999", "1-65535", "443,80-80,65535"};
    char why[200];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        CHECK_MSG(vp_port_list_check(good[i], why, sizeof why) == 0, "\"%s\": %s", good[i], why);
    static const struct { const char *list, *words; } bad[] = {
        {"", "item 1"}, {"0", "item 1 (\"0\")"}, {"65536", "not a port"}, {"80,,443", "item 2"},
        {"80,", "item 2"}, {"http", "item 1"}, {"90-80", "ends before it starts"},
        {"80-", "item 1"}, {"-80", "item 1"}, {"80 443", "followed by '4'"}, {"any,80", "item 1"},
        {"99999999999999999999", "not a port"}, {"80;443", "followed by ';'"}, {"+80", "item 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = 0;
        CHECK_MSG(vp_port_list_check(bad[i].list, why, sizeof why) == -1, "\"%s\" accepted",
                  bad[i].list);
        CHECK_MSG(strstr(why, bad[i].words) != NULL, "\"%s\": '%s' lacks '%s'", bad[i].list,
                  why, bad[i].words);
    }
    /* membership, every port, against the ranges written out */
    const char *list = "22, 80,443,8000-8010 ,65535";
    size_t held = 0, wrong = 0;
    for (unsigned p = 0; p <= 65536; p++) {
        bool want = p == 22 || p == 80 || p == 443 || (p >= 8000 && p <= 8010) || p == 65535;
        held += vp_port_list_has(list, p);
        wrong += vp_port_list_has(list, p) != want;
    }
    CHECK_MSG(held == 15 && wrong == 0, "held %zu, wrong %zu", held, wrong);
    CHECK(vp_port_list_has("any", 1) && vp_port_list_has("any", 65535) && vp_port_list_has(NULL, 9));
    CHECK(!vp_port_list_has("80,443", 0) && !vp_port_list_has("80,443", 8080));

    vp_config c;
    vp_error err;
    char *noenv[] = {NULL};
    char *a0[] = {"serve", "--model", "m", NULL};
    CHECK(load(&c, 3, a0, noenv, &err) == 0 && !strcmp(c.url_ports, "80,443"));
    vp_config_free(&c);
    char *a1[] = {"serve", "--model", "m", "--url-ports", "80,0", NULL};
    expect_refusal(5, a1, noenv, "url_ports", "item 2 (\"0\") is not a port");
    char *a2[] = {"serve", "--model", "m", "--url-ports", "", NULL};
    expect_refusal(5, a2, noenv, "url_ports", "must not be empty");
}

int main(void)
{
    test_defaults();
    test_port_lists();
    test_precedence();
    test_refusals();
    test_values();
    test_auto_sizes();
    return check_summary("test_config");
}
