/* vp_config: defaults, JSON file, environment, flags; each value parsed by the same
 * per-type parser so that every source refuses the same bad values with the same words. */
#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/options.h"
#include "config/port_list.h"
#include "engine/util/file.h"
#include "engine/util/json_alloc.h"

#define MAX_CONFIG_FILE_BYTES (1u << 20)

static void *field(vp_config *c, const vp_option *o) { return (char *)c + o->offset; }
static const void *cfield(const vp_config *c, const vp_option *o)
{
    return (const char *)c + o->offset;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *yes[] = {"true", "1", "yes", "on"};
    static const char *no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(s, yes[i])) {
            *out = true;
            return 0;
        }
        if (!strcasecmp(s, no[i])) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

/* Integer with an optional binary suffix (K, M, G, T; "KiB"/"KB" spellings too). */
int vp_config_parse_number(const char *s, bool allow_suffix, long long *out)
{
    if (!*s || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s)
        return -1;
    long long mult = 1;
    if (*end && allow_suffix) {
        switch (toupper((unsigned char)*end)) {
        case 'K': mult = 1LL << 10; break;
        case 'M': mult = 1LL << 20; break;
        case 'G': mult = 1LL << 30; break;
        case 'T': mult = 1LL << 40; break;
        default: return -1;
        }
        end++;
        if (!strcasecmp(end, "iB") || !strcasecmp(end, "B"))
            end += strlen(end);
    }
    if (*end)
        return -1;
    if (v != 0 && (v > INT64_MAX / mult || v < INT64_MIN / mult))
        return -1;
    *out = v * mult;
    return 0;
}

static bool enum_has(const char *choices, const char *s)
{
    size_t n = strlen(s);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, s, n))
            return true;
        p += len + (bar ? 1 : 0);
    }
    return false;
}

static void flag_name(const vp_option *o, char *buf, size_t cap)
{
    snprintf(buf, cap, "--%s", o->name);
    for (char *p = buf + 2; *p; p++)
        if (*p == '_')
            *p = '-';
}

static void env_name(const vp_option *o, char *buf, size_t cap)
{
    snprintf(buf, cap, "VPRM_%s", o->name);
    for (char *p = buf; *p; p++)
        *p = (char)toupper((unsigned char)*p);
}

static int set_option(vp_config *c, const vp_option *o, const char *value, const char *origin,
                      vp_error *err)
{
    void *dst = field(c, o);
    switch (o->type) {
    case VP_OPT_STR:
    case VP_OPT_ENUM: {
        if (o->type == VP_OPT_ENUM && (!value || !enum_has(o->choices, value)))
            return vp_fail(err, VP_ERR_BAD_REQUEST, o->name,
                           "option %s (%s): '%s' is not one of %s", o->name, origin,
                           value ? value : "(null)", o->choices);
        char *copy = NULL;
        if (value && *value) {
            copy = strdup(value);
            if (!copy)
                return vp_fail(err, VP_ERR_NOMEM, o->name, "option %s: out of memory", o->name);
        }
        free(*(char **)dst);
        *(char **)dst = copy;
        return 0;
    }
    case VP_OPT_BOOL: {
        bool b;
        if (!value || parse_bool(value, &b))
            return vp_fail(err, VP_ERR_BAD_REQUEST, o->name,
                           "option %s (%s): '%s' is not a boolean (true/false)", o->name,
                           origin, value ? value : "(null)");
        *(bool *)dst = b;
        return 0;
    }
    case VP_OPT_INT:
    case VP_OPT_SIZE: {
        if (o->type == VP_OPT_SIZE && o->choices && value && !strcasecmp(value, o->choices)) {
            *(size_t *)dst = VP_SIZE_AUTO;
            return 0;
        }
        long long v;
        if (!value || vp_config_parse_number(value, o->type == VP_OPT_SIZE, &v))
            return vp_fail(err, VP_ERR_BAD_REQUEST, o->name,
                           "option %s (%s): '%s' is not %s", o->name, origin,
                           value ? value : "(null)",
                           o->type == VP_OPT_INT ? "an integer"
                           : o->choices          ? "a size (e.g. 1048576, 64K, 16M, 2G) or auto"
                                                 : "a size (e.g. 1048576, 64K, 16M, 2G)");
        if (v < o->min || v > o->max)
            return vp_fail(err, VP_ERR_BAD_REQUEST, o->name,
                           "option %s (%s): %lld is outside [%lld, %lld]", o->name, origin, v,
                           o->min, o->max);
        if (o->type == VP_OPT_INT)
            *(int *)dst = (int)v;
        else
            *(size_t *)dst = (size_t)v;
        return 0;
    }
    }
    return vp_fail(err, VP_ERR_INTERNAL, o->name, "option %s: unknown type", o->name);
}

int vp_config_set(vp_config *c, const char *name, const char *value, const char *origin,
                  vp_error *err)
{
    const vp_option *o = vp_option_find(name);
    if (!o)
        return vp_fail(err, VP_ERR_BAD_REQUEST, name, "unknown option '%s' (%s); see vprm serve --help",
                       name, origin);
    return set_option(c, o, value, origin, err);
}

int vp_config_default(vp_config *c)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < vp_n_options; i++) {
        const vp_option *o = &vp_options[i];
        if (!o->def)
            continue;
        vp_error err;
        /* defaults are valid by construction (test_config checks every one): a string's
         * copy is all that can fail */
        if (set_option(c, o, o->def, "default", &err))
            return -1;
    }
    return 0;
}

void vp_config_free(vp_config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < vp_n_options; i++) {
        const vp_option *o = &vp_options[i];
        if (o->type == VP_OPT_STR || o->type == VP_OPT_ENUM) {
            free(*(char **)field(c, o));
            *(char **)field(c, o) = NULL;
        }
    }
}

int vp_config_apply_json_text(vp_config *c, const char *text, size_t len, const char *origin,
                              vp_error *err)
{
    json_error_t jerr;
    json_t *root = vp_json_parse(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root && vp_json_oom(&jerr))
        return vp_fail(err, VP_ERR_NOMEM, "config", "%s: out of memory parsing it", origin);
    if (!root)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "config", "%s: invalid JSON at line %d column %d: %s",
                       origin, jerr.line, jerr.column, jerr.text);
    int rc = 0;
    if (!json_is_object(root)) {
        rc = vp_fail(err, VP_ERR_BAD_REQUEST, "config", "%s: the top level must be a JSON object",
                     origin);
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        const vp_option *o = vp_option_find(key);
        if (!o) {
            /* a flag's spelling ("max-responses") for a key: say which key it is */
            char underscored[64];
            size_t n = 0;
            for (; key[n] && n + 1 < sizeof underscored; n++)
                underscored[n] = key[n] == '-' ? '_' : key[n];
            underscored[n] = 0;
            const vp_option *meant = strchr(key, '-') ? vp_option_find(underscored) : NULL;
            if (meant)
                rc = vp_fail(err, VP_ERR_BAD_REQUEST, key, "%s: unknown option '%s' (keys are "
                             "written with '_': \"%s\")", origin, key, meant->name);
            else
                rc = vp_fail(err, VP_ERR_BAD_REQUEST, key,
                             "%s: unknown option '%s'; see vprm serve --help", origin, key);
            goto out;
        }
        char buf[64];
        const char *text_value = NULL;
        if (json_is_string(v)) {
            text_value = json_string_value(v);
        } else if (json_is_integer(v)) {
            snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
            text_value = buf;
        } else if (json_is_boolean(v)) {
            text_value = json_is_true(v) ? "true" : "false";
        } else if (json_is_null(v) && o->type == VP_OPT_STR) {
            text_value = NULL;
        } else {
            rc = vp_fail(err, VP_ERR_BAD_REQUEST, key,
                         "option %s (%s): expected %s", key, origin,
                         o->type == VP_OPT_BOOL ? "a boolean"
                         : (o->type == VP_OPT_INT || o->type == VP_OPT_SIZE) ? "an integer"
                                                                              : "a string");
            goto out;
        }
        if (set_option(c, o, text_value, origin, err)) {
            rc = -1;
            goto out;
        }
    }
out:
    json_decref(root);
    return rc;
}

int vp_config_apply_file(vp_config *c, const char *path, vp_error *err)
{
    uint8_t *data;
    size_t len;
    if (vp_read_file(path, MAX_CONFIG_FILE_BYTES, &data, &len, err)) {
        vp_error_prefix(err, "config file %s", path);
        if (err->kind != VP_ERR_NOMEM)
            err->kind = VP_ERR_BAD_REQUEST;
        snprintf(err->param, sizeof err->param, "config");
        return -1;
    }
    char origin[300];
    snprintf(origin, sizeof origin, "config file %s", path);
    int rc = vp_config_apply_json_text(c, (const char *)data, len, origin, err);
    free(data);
    return rc;
}

static const char *env_lookup(char **env, const char *name)
{
    if (!env)
        return NULL;
    size_t n = strlen(name);
    for (char **e = env; *e; e++)
        if (!strncmp(*e, name, n) && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}

int vp_config_apply_env(vp_config *c, char **env, vp_error *err)
{
    for (size_t i = 0; i < vp_n_options; i++) {
        const vp_option *o = &vp_options[i];
        char name[80];
        env_name(o, name, sizeof name);
        const char *v = env_lookup(env, name);
        if (!v)
            continue;
        /* an empty variable unsets a string (docker compose writes FOO= for "none") */
        if (!*v && o->type != VP_OPT_STR)
            return vp_fail(err, VP_ERR_BAD_REQUEST, o->name,
                           "option %s (environment %s): empty value", o->name, name);
        char origin[100];
        snprintf(origin, sizeof origin, "environment %s", name);
        if (set_option(c, o, v, origin, err))
            return -1;
    }
    return 0;
}

/* Finds the option of a flag "--max-body-bytes" (or "--no-warmup" for a boolean). */
static const vp_option *flag_option(const char *flag, bool *negated)
{
    *negated = false;
    for (size_t i = 0; i < vp_n_options; i++) {
        char f[80];
        flag_name(&vp_options[i], f, sizeof f);
        if (!strcmp(f, flag))
            return &vp_options[i];
        if (vp_options[i].type == VP_OPT_BOOL && !strncmp(flag, "--no-", 5) &&
            !strcmp(f + 2, flag + 5)) {
            *negated = true;
            return &vp_options[i];
        }
    }
    return NULL;
}

int vp_config_apply_args(vp_config *c, int argc, char **argv, bool *help, vp_error *err)
{
    *help = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            *help = true;
            continue;
        }
        if (strncmp(arg, "--", 2))
            return vp_fail(err, VP_ERR_BAD_REQUEST, arg,
                           "unexpected argument '%s' (options are --name VALUE)", arg);
        char flag[128];
        const char *eq = strchr(arg, '=');
        size_t flen = eq ? (size_t)(eq - arg) : strlen(arg);
        if (flen >= sizeof flag)
            return vp_fail(err, VP_ERR_BAD_REQUEST, "", "unknown option '%.60s...'", arg);
        memcpy(flag, arg, flen);
        flag[flen] = 0;
        if (!strcmp(flag, "--config")) { /* applied earlier by vp_config_load */
            if (!eq)
                i++;
            if (i >= argc && !eq)
                return vp_fail(err, VP_ERR_BAD_REQUEST, "config", "option --config needs a FILE");
            continue;
        }
        bool negated;
        const vp_option *o = flag_option(flag, &negated);
        if (!o)
            return vp_fail(err, VP_ERR_BAD_REQUEST, flag,
                           "unknown option '%s'; see vprm serve --help", flag);
        char origin[160];
        snprintf(origin, sizeof origin, "flag %s", flag);
        const char *value;
        if (eq) {
            value = eq + 1;
            if (negated)
                return vp_fail(err, VP_ERR_BAD_REQUEST, o->name,
                               "option %s (%s) takes no value", o->name, origin);
        } else if (o->type == VP_OPT_BOOL) {
            value = negated ? "false" : "true";
        } else {
            if (i + 1 >= argc)
                return vp_fail(err, VP_ERR_BAD_REQUEST, o->name, "option %s (%s) needs a value",
                               o->name, origin);
            value = argv[++i];
        }
        if (set_option(c, o, value, origin, err))
            return -1;
    }
    return 0;
}

int vp_config_validate(const vp_config *c, vp_error *err)
{
    if (!c->model_dir)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "model",
                       "option model is required (--model DIR, VPRM_MODEL or \"model\" in the config file)");
    if (!c->host)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "host", "option host must not be empty");
    if (c->api_key) {
        if (strlen(c->api_key) < 8)
            return vp_fail(err, VP_ERR_BAD_REQUEST, "api_key",
                           "option api_key: at least 8 characters are required");
        /* it travels in an Authorization header: visible ASCII only */
        for (const unsigned char *p = (const unsigned char *)c->api_key; *p; p++)
            if (*p <= ' ' || *p >= 0x7f)
                return vp_fail(err, VP_ERR_BAD_REQUEST, "api_key",
                               "option api_key: byte 0x%02x at offset %zu; only visible ASCII "
                               "characters are allowed (no spaces, control characters or "
                               "non-ASCII)",
                               *p, (size_t)(p - (const unsigned char *)c->api_key));
    }
    if (!c->tls_cert != !c->tls_key)
        return vp_fail(err, VP_ERR_BAD_REQUEST, c->tls_cert ? "tls_key" : "tls_cert",
                       "option %s is needed with %s: HTTPS takes a certificate and its key",
                       c->tls_cert ? "tls_key" : "tls_cert", c->tls_cert ? "tls_cert" : "tls_key");
    if (c->tls_key_password && !c->tls_key)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "tls_key_password",
                       "option tls_key_password is set without tls_key");
    if (c->tls_client_ca && !c->tls_cert)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "tls_client_ca",
                       "option tls_client_ca is set without tls_cert: client certificates "
                       "need HTTPS");
    if (c->max_image_bytes > c->max_body_bytes)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "max_image_bytes",
                       "option max_image_bytes (%zu) exceeds max_body_bytes (%zu): no request "
                       "could carry such an image",
                       c->max_image_bytes, c->max_body_bytes);
    char why[200];
    if (!c->url_ports)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "url_ports",
                       "option url_ports must not be empty (\"any\" allows every port)");
    if (vp_port_list_check(c->url_ports, why, sizeof why))
        return vp_fail(err, VP_ERR_BAD_REQUEST, "url_ports", "option url_ports: %s", why);
    if (c->max_text_bytes > c->max_body_bytes)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "max_text_bytes",
                       "option max_text_bytes (%zu) exceeds max_body_bytes (%zu)",
                       c->max_text_bytes, c->max_body_bytes);
    return 0;
}

int vp_config_load(vp_config *c, int argc, char **argv, char **env, FILE *out, vp_error *err)
{
    /* the config file is found first (flag, else environment) and applied below env + flags */
    const char *file = env_lookup(env, "VPRM_CONFIG");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--config") && i + 1 < argc) {
            file = argv[++i];
        } else if (!strncmp(a, "--config=", 9)) {
            file = a + 9;
        } else if (!strncmp(a, "--", 2) && !strchr(a, '=')) {
            /* an option's value is not an option, even spelled "--config" */
            bool negated;
            const vp_option *o = flag_option(a, &negated);
            if (o && o->type != VP_OPT_BOOL && !negated)
                i++;
        }
    }
    if (file && *file && vp_config_apply_file(c, file, err))
        return -1;
    if (vp_config_apply_env(c, env, err))
        return -1;
    bool help;
    if (vp_config_apply_args(c, argc, argv, &help, err))
        return -1;
    if (help) {
        vp_config_print_help(out);
        return 1;
    }
    return vp_config_validate(c, err);
}

static void value_text(const vp_config *c, const vp_option *o, char *buf, size_t cap)
{
    const void *p = cfield(c, o);
    switch (o->type) {
    case VP_OPT_STR:
    case VP_OPT_ENUM: {
        const char *s = *(char *const *)p;
        if (!s)
            snprintf(buf, cap, "(unset)");
        else if (o->secret)
            snprintf(buf, cap, "(set, %zu characters)", strlen(s));
        else
            snprintf(buf, cap, "%s", s);
        break;
    }
    case VP_OPT_BOOL: snprintf(buf, cap, "%s", *(const bool *)p ? "true" : "false"); break;
    case VP_OPT_INT: snprintf(buf, cap, "%d", *(const int *)p); break;
    case VP_OPT_SIZE:
        if (o->choices && *(const size_t *)p == VP_SIZE_AUTO)
            snprintf(buf, cap, "auto");
        else
            snprintf(buf, cap, "%zu", *(const size_t *)p);
        break;
    }
}

void vp_config_print_help(FILE *f)
{
    fprintf(f,
            "usage: vprm serve --model DIR [options]\n\n"
            "Serves the HTTP API of API.md. Every option can be set, lowest to highest\n"
            "precedence, by its default, a JSON config file (--config FILE or VPRM_CONFIG;\n"
            "its keys are the flags' names with '_' for '-': max_responses), an environment\n"
            "variable, or a flag.\n"
            "Sizes accept K/M/G suffixes (binary). Booleans: --flag, --no-flag, --flag=false.\n\n");
    fprintf(f, "  %-30s %-28s %s\n", "--config FILE", "VPRM_CONFIG", "JSON config file");
    for (size_t i = 0; i < vp_n_options; i++) {
        const vp_option *o = &vp_options[i];
        char flag[80], env[80], arg[200];
        flag_name(o, flag, sizeof flag);
        env_name(o, env, sizeof env);
        const char *meta = o->type == VP_OPT_BOOL   ? ""
                           : o->type == VP_OPT_INT  ? " N"
                           : o->type == VP_OPT_SIZE ? (strstr(o->name, "bytes") ? " BYTES" : " N")
                           : o->type == VP_OPT_ENUM ? " X"
                                                    : " S";
        snprintf(arg, sizeof arg, "%s%s", flag, meta);
        fprintf(f, "  %-30s %-28s default: %s\n", arg, env, o->def ? o->def : "(unset)");
        fprintf(f, "      %s", o->help);
        if (o->type == VP_OPT_ENUM)
            fprintf(f, " (%s)", o->choices);
        else if (o->type == VP_OPT_INT || o->type == VP_OPT_SIZE)
            fprintf(f, " [%lld..%lld%s%s]", o->min, o->max, o->choices ? " or " : "",
                    o->choices ? o->choices : "");
        fputc('\n', f);
    }
}

void vp_config_dump(const vp_config *c, FILE *f)
{
    for (size_t i = 0; i < vp_n_options; i++) {
        char v[300];
        value_text(c, &vp_options[i], v, sizeof v);
        fprintf(f, "%s=%s\n", vp_options[i].name, v);
    }
}
