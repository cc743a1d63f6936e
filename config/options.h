/* The option table behind vp_config: one row per option, with its type, place in the
 * struct, default (as text, parsed like any other source), range and help. */
#ifndef VP_CONFIG_OPTIONS_H
#define VP_CONFIG_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    VP_OPT_STR,   /* char *, NULL when unset */
    VP_OPT_ENUM,  /* char *, one of `choices` ("a|b|c") */
    VP_OPT_INT,   /* int in [min, max] */
    VP_OPT_SIZE,  /* size_t in [min, max]; accepts K/M/G suffixes (binary), and the word
                   * "auto" (VP_SIZE_AUTO) where `choices` is "auto" */
    VP_OPT_BOOL   /* bool: true/false, 1/0, yes/no, on/off */
} vp_opt_type;

typedef struct vp_option {
    const char *name;        /* JSON key; flag is --name with '_' -> '-'; env VPRM_NAME */
    vp_opt_type type;
    size_t offset;           /* offsetof(vp_config, field) */
    const char *def;         /* default as text; NULL = unset (strings only) */
    long long min, max;      /* INT / SIZE range */
    const char *choices;     /* ENUM: "cpu|cuda"; SIZE: "auto" or NULL */
    const char *help;
    int secret;              /* masked in logs and dumps */
} vp_option;

/* A SIZE option set to "auto": the engine picks the size (engine/backend.h's
 * VP_KV_CACHE_AUTO has the same value). */
#define VP_SIZE_AUTO SIZE_MAX

extern const vp_option vp_options[];
extern const size_t vp_n_options;

const vp_option *vp_option_find(const char *name);

#endif
