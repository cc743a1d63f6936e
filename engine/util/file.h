/* Whole-file reads and read-only memory maps. */
#ifndef VP_FILE_H
#define VP_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/util/err.h"

/* Read a whole file into a NUL-terminated heap buffer; refuses files over max_bytes
 * (0 = no limit). *out must be freed. */
int vp_read_file(const char *path, size_t max_bytes, uint8_t **out, size_t *len, vp_error *err);

/* Write a buffer to a file (truncating). */
int vp_write_file(const char *path, const void *data, size_t len, vp_error *err);

typedef struct vp_mmap {
    const uint8_t *data; /* [len], read-only */
    size_t len;
} vp_mmap;

int vp_mmap_open(const char *path, vp_mmap *m, vp_error *err);
void vp_mmap_close(vp_mmap *m);

/* "dir/name" into buf; -1 if it does not fit. */
int vp_path_join(char *buf, size_t cap, const char *dir, const char *name);

#endif
