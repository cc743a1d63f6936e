/* API keys (server/api_keys.c): the file's format (names, comments, CRLF, blanks), every
 * refusal with the line it names and never the key's bytes, matching (whole keys only,
 * whitespace and prefixes not taken), and --api-key beside the file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/api_keys.h"
#include "tests/unit/check.h"

static char dir[] = "/tmp/vprm_test_api_keys_XXXXXX";

static const char *write_file(const char *name, const char *text, size_t len)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(text, 1, len, f);
        fclose(f);
    }
    return path;
}

/* Loads text as a keys file; the keys, or NULL and err. */
static vp_api_keys *load_text(const char *single, const char *text, vp_error *err)
{
    const char *path = write_file("keys.txt", text, strlen(text));
    vp_api_keys *k = NULL;
    memset(err, 0, sizeof *err);
    if (vp_api_keys_load(single, path, &k, err))
        return NULL;
    return k;
}

/* the matching key's name, or NULL */
static const char *match(const vp_api_keys *k, const char *token)
{
    static vp_api_key_grant g;
    return vp_api_keys_match(k, token, strlen(token), &g) ? g.name : NULL;
}

/* the key's highest priority, or -1 when it matches nothing */
static int max_priority(const vp_api_keys *k, const char *token)
{
    vp_api_key_grant g;
    return vp_api_keys_match(k, token, strlen(token), &g) ? (int)g.max_priority : -1;
}

/* the key's max_queued, or -1 when it matches nothing */
static long max_queued(const vp_api_keys *k, const char *token)
{
    vp_api_key_grant g;
    return vp_api_keys_match(k, token, strlen(token), &g) ? (long)g.max_queued : -1;
}

static void test_format(void)
{
    vp_error err;
    vp_api_keys *k = load_text(NULL,
                               "# a comment line\n"
                               "\n"
                               "alice   alice-key-0001\n"
                               "   \t  \n"
                               "bare-key-00000002\r\n"
                               "\tbob.smith@corp:x_y-z  bob-key-000003  \t\r\n"
                               "  # an indented comment\n"
                               "last-line-key-0004", /* no final newline */
                               &err);
    CHECK_MSG(k != NULL, "%s", err.message);
    CHECK(vp_api_keys_count(k) == 4);
    CHECK(match(k, "alice-key-0001") && !strcmp(match(k, "alice-key-0001"), "alice"));
    CHECK(match(k, "bare-key-00000002") && !strcmp(match(k, "bare-key-00000002"), "line5"));
    CHECK(match(k, "bob-key-000003") && !strcmp(match(k, "bob-key-000003"), "bob.smith@corp:x_y-z"));
    CHECK(match(k, "last-line-key-0004") && !strcmp(match(k, "last-line-key-0004"), "line8"));
    /* whole keys only */
    CHECK(match(k, "alice-key-000") == NULL);
    CHECK(match(k, "alice-key-00011") == NULL);
    CHECK(match(k, "alice-key-0001 ") == NULL);
    CHECK(match(k, "alice") == NULL); /* a name is not a key */
    CHECK(match(k, "") == NULL);
    CHECK(!vp_api_keys_match(k, "alice-key-0001", 13, NULL)); /* the length counts */
    CHECK(vp_api_keys_match(k, "alice-key-0001", 14, NULL));
    CHECK(!vp_api_keys_match(NULL, "alice-key-0001", 14, NULL));
    CHECK(max_priority(k, "alice-key-0001") == VP_PRIORITY_HIGH); /* the default */
    vp_api_keys_free(k);
}

static void refused(const char *text, const char *want, const char *secret);

/* "NAME KEY max_priority=P": the most a key's requests may ask for */
static void test_max_priority(void)
{
    vp_error err;
    vp_api_keys *k = load_text("option-key-1234",
                               "rl-loop rl-key-00000001 max_priority=normal\n"
                               "bulk\tbulk-key-0000002\t max_priority=low \r\n"
                               "bon bon-key-00000003 max_priority=high\n"
                               "plain plain-key-000004\n",
                               &err);
    CHECK_MSG(k != NULL, "%s", err.message);
    CHECK(max_priority(k, "rl-key-00000001") == VP_PRIORITY_NORMAL);
    CHECK(max_priority(k, "bulk-key-0000002") == VP_PRIORITY_LOW);
    CHECK(max_priority(k, "bon-key-00000003") == VP_PRIORITY_HIGH);
    CHECK(max_priority(k, "plain-key-000004") == VP_PRIORITY_HIGH);
    CHECK(max_priority(k, "option-key-1234") == VP_PRIORITY_HIGH);
    CHECK(max_priority(k, "max_priority=normal") == -1);
    CHECK(max_queued(k, "rl-key-00000001") == 0); /* no bound */
    vp_api_keys_free(k);
}

/* "NAME KEY max_queued=N": jobs in flight at most */
static void test_max_queued(void)
{
    vp_error err;
    vp_api_keys *k = load_text(NULL,
                               "rl rl-key-00000001 max_queued=64\n"
                               "both both-key-0000002 max_priority=low max_queued=1\n"
                               "rev rev-key-00000003 max_queued=16777216 max_priority=normal\n"
                               "zeros zeros-key-000004 max_queued=000000007\n",
                               &err);
    CHECK_MSG(k != NULL, "%s", err.message);
    CHECK(max_queued(k, "rl-key-00000001") == 64 && max_priority(k, "rl-key-00000001") == 0);
    CHECK(max_queued(k, "both-key-0000002") == 1 && max_priority(k, "both-key-0000002") == 2);
    CHECK(max_queued(k, "rev-key-00000003") == 16777216 &&
          max_priority(k, "rev-key-00000003") == 1);
    CHECK(max_queued(k, "zeros-key-000004") == 7);
    vp_api_keys_free(k);
    refused("a key-key-12345678 max_queued=0\n", "line 1: max_queued must be a whole number", NULL);
    /* "cert:" names clients known by their certificate (tls_clients.h) */
    refused("ok key-key-87654321\ncert:trainer key-key-12345678\n",
            "line 2: a name may not start with \"cert:\"", NULL);
    refused("a key-key-12345678 max_queued=16777217\n", "max_queued must be a whole number of "
            "jobs from 1 to 16777216", NULL);
    refused("a key-key-12345678 max_queued=0000000001\n", "in at most 9 digits", NULL);
    refused("a key-key-12345678 max_queued=-3\n", "max_queued must be", NULL);
    refused("a key-key-12345678 max_queued=4x\n", "max_queued must be", NULL);
    refused("a key-key-12345678 max_queued=\n", "line 1: field 3 is not an option", NULL);
    refused("a key-key-12345678 max_queued=2 max_queued=3\n", "line 1: max_queued given twice",
            NULL);
    refused("ok ok-key-12345678\nmax_queued=4\n", "line 2: the key looks like an option", NULL);
}

/* the key's weight, or -1 when it matches nothing */
static long weight(const vp_api_keys *k, const char *token)
{
    vp_api_key_grant g;
    return vp_api_keys_match(k, token, strlen(token), &g) ? (long)g.weight : -1;
}

/* "NAME KEY weight=N": its share of the passes (fair sharing) */
static void test_weight(void)
{
    vp_error err;
    vp_api_keys *k = load_text("option-key-1234",
                               "gold gold-key-000001 weight=10\n"
                               "max max-key-0000002 max_queued=5 weight=1000 max_priority=low\n"
                               "lead lead-key-000003 weight=0007\n"
                               "plain plain-key-000004\n"
                               "bare-key-00000005\n",
                               &err);
    CHECK_MSG(k != NULL, "%s", err.message);
    CHECK(weight(k, "gold-key-000001") == 10);
    CHECK(weight(k, "max-key-0000002") == 1000 && max_queued(k, "max-key-0000002") == 5 &&
          max_priority(k, "max-key-0000002") == VP_PRIORITY_LOW);
    CHECK(weight(k, "lead-key-000003") == 7);
    CHECK(weight(k, "plain-key-000004") == 1); /* the default */
    CHECK(weight(k, "bare-key-00000005") == 1);
    CHECK(weight(k, "option-key-1234") == 1);
    vp_api_keys_free(k);
    refused("a key-key-12345678 weight=0\n", "line 1: weight must be a whole number from 1 to "
            "1000", NULL);
    refused("a key-key-12345678 weight=1001\n", "weight must be a whole number", NULL);
    refused("a key-key-12345678 weight=00001\n", "weight must be a whole number", NULL);
    refused("a key-key-12345678 weight=2.5\n", "weight must be", NULL);
    refused("a key-key-12345678 weight=\n", "line 1: field 3 is not an option", NULL);
    refused("a key-key-12345678 weight=2 weight=3\n", "line 1: weight given twice", NULL);
    refused("ok ok-key-12345678\nweight=4\n", "line 2: the key looks like an option", NULL);
    refused("a key-key-12345678 weights=2\n", "line 1: field 3 is not an option; a line is KEY, "
            "NAME KEY or NAME KEY with max_priority=high|normal|low, max_queued=N and "
            "weight=N", NULL);
}

/* "cert:NAME OPTION...": grants of a client known by its certificate, in a file without
 * keys; such a file asks for no key */
static void test_cert_grants(void)
{
    vp_error err;
    vp_api_keys *k = load_text(NULL,
                               "# trainers known by their client certificates\n"
                               "cert:rl-trainer-1 weight=3 max_queued=64\n"
                               "cert:bon_server.example max_priority=high weight=2\n"
                               "cert:~0123456789abcdef\tmax_priority=low\r\n",
                               &err);
    CHECK_MSG(k != NULL, "%s", err.message);
    CHECK(vp_api_keys_count(k) == 0 && vp_api_keys_cert_grants(k) == 3);
    vp_api_key_grant g;
    CHECK(vp_api_keys_cert_grant(k, "cert:rl-trainer-1", &g) && g.weight == 3 &&
          g.max_queued == 64 && g.max_priority == VP_PRIORITY_HIGH &&
          !strcmp(g.name, "cert:rl-trainer-1"));
    CHECK(vp_api_keys_cert_grant(k, "cert:bon_server.example", &g) && g.weight == 2 &&
          g.max_queued == 0);
    CHECK(vp_api_keys_cert_grant(k, "cert:~0123456789abcdef", &g) &&
          g.max_priority == VP_PRIORITY_LOW && g.weight == 1);
    CHECK(!vp_api_keys_cert_grant(k, "cert:rl-trainer", &g) &&
          !vp_api_keys_cert_grant(k, "rl-trainer-1", &g));
    CHECK(match(k, "weight=3") == NULL && match(k, "cert:rl-trainer-1") == NULL);
    vp_api_keys_free(k);
    /* a keys file: nothing changes for its keys (one spelled cert:... after a name), and
     * no grants */
    k = load_text(NULL, "alice alice-key-0001 weight=2\nbob cert:abc-key-123456\n", &err);
    CHECK_MSG(k && vp_api_keys_count(k) == 2 && vp_api_keys_cert_grants(k) == 0, "%s",
              err.message);
    CHECK(k && match(k, "cert:abc-key-123456") && !strcmp(match(k, "cert:abc-key-123456"), "bob"));
    vp_api_keys_free(k);
    /* a lone cert:NAME (a grants line that lost its options) is neither a key nor grants */
    refused("cert:alice\n", "line 1: cert:NAME without options", NULL);
    refused("alice alice-key-0001\ncert:abc-key-123456\n", "line 2: cert:NAME without options",
            NULL);
    refused("alice alice-key-0001\ncert:trainer weight=2\n", "line 2: grants of a certificate's "
            "client (cert:NAME) apply only without API keys", NULL);
    k = load_text("option-key-1234", "cert:trainer weight=2\n", &err);
    CHECK_MSG(k == NULL && strstr(err.message, "line 1: grants of a certificate's client") &&
                  strstr(err.message, "option api_key"), "%s", err.message);
    refused("cert:a weight=2\ncert:a max_queued=3\n", "line 2 repeats the grants of line 1", NULL);
    refused("cert:a/b weight=2\n", "line 1: byte 0x2f at offset 6 of the name", NULL);
    refused("cert:a:b weight=2\n", "byte 0x3a at offset 6", NULL);
    refused("cert:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa weight=2\n",
            "line 1: a certificate's client name is cert: and 1 to 59 bytes", NULL);
    refused("cert:a weight=2 extra-key-123456\n", "line 1: field 3 is not an option", "extra-key");
    refused("cert:a weight=0\n", "line 1: weight must be a whole number", NULL);
    refused("cert:a trainer-key-123456 weight=2\n", "line 1: a name may not start with \"cert:\"",
            "trainer-key");
    refused("cert: weight=2\n", "line 1: the key looks like an option", NULL);
    /* at most 10,000 grants, as keys */
    size_t cap = 10001 * 24 + 1, n = 0, before_last = 0;
    char *many = malloc(cap);
    for (int i = 1; many && i <= 10001; i++) {
        before_last = n;
        n += (size_t)snprintf(many + n, cap - n, "cert:c%d weight=2\n", i);
    }
    if (many) {
        refused(many, "line 10001: more than 10000 certificate grants", NULL);
        many[before_last] = 0; /* the last line gone: 10,000 are taken */
        k = load_text(NULL, many, &err);
        CHECK_MSG(k && vp_api_keys_cert_grants(k) == 10000, "%s", err.message);
        CHECK(k && vp_api_keys_cert_grant(k, "cert:c10000", &g) && g.weight == 2);
        vp_api_keys_free(k);
    }
    free(many);
}

static void test_with_option(void)
{
    vp_error err;
    vp_api_keys *k = load_text("option-key-1234", "carol carol-key-1234\n", &err);
    CHECK_MSG(k != NULL, "%s", err.message);
    CHECK(vp_api_keys_count(k) == 2);
    CHECK(match(k, "option-key-1234") && !strcmp(match(k, "option-key-1234"), "api_key"));
    CHECK(match(k, "carol-key-1234") && !strcmp(match(k, "carol-key-1234"), "carol"));
    vp_api_keys_free(k);
    /* the option alone, and neither */
    CHECK(vp_api_keys_load("option-key-1234", NULL, &k, &err) == 0 && vp_api_keys_count(k) == 1);
    vp_api_keys_free(k);
    k = (vp_api_keys *)1;
    CHECK(vp_api_keys_load(NULL, NULL, &k, &err) == 0 && k == NULL);
    /* the file repeating the option's key or its name */
    CHECK(load_text("option-key-1234", "x option-key-1234\n", &err) == NULL &&
          strstr(err.message, "line 1 repeats the key of option api_key"));
    CHECK(load_text("option-key-1234", "api_key other-key-1234\n", &err) == NULL &&
          strstr(err.message, "line 1 repeats the name of option api_key"));
}

/* text is refused with a message holding `want`, and not the secret */
static void refused(const char *text, const char *want, const char *secret)
{
    vp_error err;
    vp_api_keys *k = load_text(NULL, text, &err);
    CHECK_MSG(k == NULL, "accepted: %s", text);
    vp_api_keys_free(k);
    CHECK_MSG(strstr(err.message, want) != NULL, "'%s' not in '%s'", want, err.message);
    CHECK_MSG(strstr(err.message, "keys.txt") != NULL, "no file name in '%s'", err.message);
    CHECK_MSG(!strcmp(err.param, "api_keys_file"), "param '%s'", err.param);
    if (secret)
        CHECK_MSG(strstr(err.message, secret) == NULL, "the key in '%s'", err.message);
}

static void test_refusals(void)
{
    refused("", "holds no key", NULL);
    refused("# only a comment\n\n   \n", "holds no key", NULL);
    refused("a b c-key-12345678\n", "line 1: field 3 is not an option", "c-key-12345678");
    refused("a key-key-12345678 max_priority=urgent\n",
            "line 1: max_priority must be high, normal or low", "key-key-12345678");
    refused("a key-key-12345678 max_priority=\n", "line 1: field 3 is not an option", NULL);
    refused("a key-key-12345678 max_priority=low max_priority=low\n",
            "line 1: max_priority given twice", NULL);
    refused("a key-key-12345678 max_priority=low other-key-1234567\n",
            "line 1: field 4 is not an option", "other-key-1234567");
    refused("ok ok-key-12345678\nkey-alone-1234567 max_priority=low\n",
            "line 2: the key looks like an option", NULL);
    refused("max_priority=low\n", "line 1: the key looks like an option", NULL);
    refused("ok-key-12345678\nshort7x\n", "line 2: the key has 7 bytes; 8 to 4096", "short7x");
    refused("name k\xc3\xa9y-1234567\n", "line 1: the byte at offset 1 of the key is not visible ASCII",
            "\xc3");
    refused("name key-with-\x01-ctrl\n", "the byte at offset 9 of the key is not visible", "0x01");
    /* a name that is also a key: fields swapped, or an old key left as a name */
    refused("a first-key-12345678\nfirst-key-12345678 second-key-1234567\n",
            "line 2: the name is also one of the keys", "first-key-12345678");
    refused("second-key-1234567 first-key-12345678\nb second-key-1234567\n",
            "line 1: the name is also one of the keys", "second-key-1234567");
    refused("bad/name key-key-12345678\n", "line 1: byte 0x2f at offset 3 of the name",
            "key-key-12345678");
    refused("a same-key-12345678\nb same-key-12345678\n",
            "line 2 repeats the key of line 1", "same-key-12345678");
    refused("dup key-one-12345678\ndup key-two-12345678\n",
            "line 2 repeats the name of line 1", "key-two-12345678");
    char longname[100];
    memset(longname, 'n', 65);
    snprintf(longname + 65, sizeof longname - 65, " key-key-12345678\n");
    refused(longname, "the name has 65 bytes; at most 64", NULL);
    char *longkey = malloc(VP_API_KEY_MAX + 3);
    memset(longkey, 'k', VP_API_KEY_MAX + 1);
    strcpy(longkey + VP_API_KEY_MAX + 1, "\n");
    refused(longkey, "the key has 4097 bytes", NULL);
    longkey[VP_API_KEY_MAX] = '\n'; /* exactly the most */
    longkey[VP_API_KEY_MAX + 1] = 0;
    vp_error err;
    vp_api_keys *k = load_text(NULL, longkey, &err);
    CHECK_MSG(k && vp_api_keys_count(k) == 1, "%s", err.message);
    vp_api_keys_free(k);
    free(longkey);
    /* a NUL byte: not a text file */
    const char *path = write_file("keys.txt", "key-one-12345678\n\0x", 19);
    CHECK(vp_api_keys_load(NULL, path, &k, &err) == -1 && strstr(err.message, "NUL byte") &&
          strstr(err.message, "offset 17"));
    /* a missing file, a folder */
    char missing[300];
    snprintf(missing, sizeof missing, "%s/none.txt", dir);
    CHECK(vp_api_keys_load(NULL, missing, &k, &err) == -1 && strstr(err.message, "none.txt") &&
          !strcmp(err.param, "api_keys_file"));
    CHECK(vp_api_keys_load(NULL, dir, &k, &err) == -1 && !strcmp(err.param, "api_keys_file"));
    /* a short --api-key */
    CHECK(vp_api_keys_load("short", NULL, &k, &err) == -1 && !strcmp(err.param, "api_key") &&
          strstr(err.message, "option api_key: the key has 5 bytes"));
}

/* A thousand keys: each matches its own name only. */
static void test_many(void)
{
    size_t n = 1000, cap = n * 48;
    char *text = malloc(cap), *at = text;
    for (size_t i = 0; i < n; i++)
        at += sprintf(at, "client%zu key-%08zu-%zx\n", i, i * 7919, i);
    vp_error err;
    vp_api_keys *k = load_text(NULL, text, &err);
    CHECK_MSG(k && vp_api_keys_count(k) == n, "%s", err.message);
    size_t right = 0;
    for (size_t i = 0; i < n; i++) {
        char key[64], name[32];
        snprintf(key, sizeof key, "key-%08zu-%zx", i * 7919, i);
        snprintf(name, sizeof name, "client%zu", i);
        const char *got = match(k, key);
        right += got && !strcmp(got, name);
    }
    CHECK(right == n);
    CHECK(match(k, "key-00000000-1") == NULL);
    CHECK(max_queued(k, "key-00000000-0") == 0);
    vp_api_keys_free(k);
    free(text);
    /* the most keys, and one more (a comment line between them) */
    n = VP_API_KEYS_MAX + 1;
    text = malloc(n * 32 + 16);
    at = text;
    for (size_t i = 0; i < n; i++)
        at += sprintf(at, "%skey-%zu-abcdefgh\n", i == 5 ? "# note\n" : "", i);
    k = load_text(NULL, text, &err);
    CHECK(k == NULL && strstr(err.message, "line 10002: more than 10000 keys"));
    *strstr(text, "key-10000-abcdefgh") = 0;
    k = load_text(NULL, text, &err);
    CHECK_MSG(k && vp_api_keys_count(k) == VP_API_KEYS_MAX, "%s", err.message);
    CHECK(k && match(k, "key-9999-abcdefgh") && !strcmp(match(k, "key-9999-abcdefgh"), "line10001"));
    vp_api_keys_free(k);
    free(text);
    /* a long token (a head's worth) is one hash, refused */
    char *token = malloc(20001);
    memset(token, 'k', 20000);
    token[20000] = 0;
    k = load_text(NULL, "one-key-12345678\n", &err);
    CHECK(k && match(k, token) == NULL);
    vp_api_keys_free(k);
    free(token);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_format();
    test_with_option();
    test_max_priority();
    test_max_queued();
    test_weight();
    test_cert_grants();
    test_refusals();
    test_many();
    char path[300];
    snprintf(path, sizeof path, "%s/keys.txt", dir);
    unlink(path);
    rmdir(dir);
    return check_summary("test_api_keys");
}
