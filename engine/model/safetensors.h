/* safetensors files (one file, then a checkpoint folder of shards), memory-mapped and
 * validated: nothing in the header is trusted before it is checked against the file. */
#ifndef VP_SAFETENSORS_H
#define VP_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model/tensor.h"
#include "engine/util/err.h"
#include "engine/util/file.h"

/* Headers above this are refused (the reference implementation uses the same bound). */
#define VP_ST_MAX_HEADER ((size_t)100 << 20)

typedef struct vp_st_file {
    char *path;          /* heap; names the file in messages */
    vp_mmap map;         /* the whole file (unmapped by vp_st_close); empty after vp_st_parse */
    size_t data_offset;  /* 8 + header length: byte ranges count from here */
    vp_tensor *tensors;  /* [n] sorted by name; names and tensors heap-owned */
    size_t n;
} vp_st_file;

/* Maps path and validates it: header length, JSON, dtypes, shapes against byte ranges,
 * ranges inside the data, not overlapping and covering it exactly. */
int vp_st_open(const char *path, vp_st_file *f, vp_error *err);
/* The same validation over bytes already in memory (they must outlive f); label names
 * them in messages. */
int vp_st_parse(const uint8_t *bytes, size_t len, const char *label, vp_st_file *f, vp_error *err);
/* The tensor called name, or NULL. */
const vp_tensor *vp_st_find(const vp_st_file *f, const char *name);
void vp_st_close(vp_st_file *f);

/* A checkpoint folder: model.safetensors, or model.safetensors.index.json and the shards
 * its weight_map names. Every shard is opened once; every tensor listed must be in the
 * shard the index names, and every tensor of a shard must be listed for that shard. */
typedef struct vp_checkpoint {
    vp_st_file *files;         /* [n_files] */
    size_t n_files;
    const vp_tensor **tensors; /* [n] every tensor of every file, sorted by name */
    size_t *file_of;           /* [n] index into files of tensors[i] */
    size_t n;
} vp_checkpoint;

int vp_checkpoint_open(const char *dir, vp_checkpoint *ck, vp_error *err);
/* Index of the tensor called name in ck->tensors, or -1. */
long vp_checkpoint_find(const vp_checkpoint *ck, const char *name);
void vp_checkpoint_close(vp_checkpoint *ck);

#endif
