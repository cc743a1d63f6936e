/* safetensors validation on crafted files: each broken file is refused with a message
 * that names the tensor (or the file / shard) and the problem; valid single and sharded
 * checkpoints open and read back the bytes written. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/model/safetensors.h"
#include "engine/util/file.h"
#include "tests/unit/check.h"

static char dir[64];

/* [u64 header length (hlen, or the real one when 0)][header][data_len bytes 0, 1, 2, ...] */
static void craft(const char *name, const char *header, size_t data_len, uint64_t hlen)
{
    size_t h = strlen(header);
    size_t total = 8 + h + data_len;
    unsigned char *buf = malloc(total);
    uint64_t n = hlen ? hlen : h;
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(n >> (8 * i));
    memcpy(buf + 8, header, h);
    for (size_t i = 0; i < data_len; i++)
        buf[8 + h + i] = (unsigned char)(i * 7 + 1);
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    vp_error err;
    CHECK(vp_write_file(path, buf, total, &err) == 0);
    free(buf);
}

static void put_text(const char *name, const char *text)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    vp_error err;
    CHECK(vp_write_file(path, text, strlen(text), &err) == 0);
}

/* Opening name must fail with every non-NULL want in the message. */
static void refuse_file(const char *name, const char *want1, const char *want2)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    vp_st_file f;
    vp_error err = {0};
    int rc = vp_st_open(path, &f, &err);
    CHECK_MSG(rc == -1, "%s was accepted", name);
    if (rc == 0) {
        vp_st_close(&f);
        return;
    }
    CHECK_MSG(strstr(err.message, want1), "%s: '%s' lacks '%s'", name, err.message, want1);
    if (want2)
        CHECK_MSG(strstr(err.message, want2), "%s: '%s' lacks '%s'", name, err.message, want2);
}

#define T2(n1, n2) \
    "{\"" n1 "\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,12]}," \
    "\"" n2 "\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[12,28]}}"

static void test_valid_file(void)
{
    craft("ok.safetensors",
          "{\"__metadata__\":{\"format\":\"pt\"}," "\"b.bias\":{\"dtype\":\"F32\",\"shape\":[4],"
          "\"data_offsets\":[12,28]},\"a.weight\":{\"dtype\":\"BF16\",\"shape\":[2,3],"
          "\"data_offsets\":[0,12]},\"empty\":{\"dtype\":\"F16\",\"shape\":[0,5],\"data_offsets\":[28,28]}}  ",
          28, 0);
    char path[128];
    snprintf(path, sizeof path, "%s/ok.safetensors", dir);
    vp_st_file f;
    vp_error err = {0};
    int rc = vp_st_open(path, &f, &err);
    CHECK_MSG(rc == 0, "%s", err.message);
    if (rc)
        return;
    CHECK(f.n == 3);
    const vp_tensor *a = vp_st_find(&f, "a.weight"), *b = vp_st_find(&f, "b.bias");
    CHECK(a && b && !vp_st_find(&f, "c") && vp_st_find(&f, "empty"));
    if (a && b) {
        CHECK(a->dtype == VP_DT_BF16 && a->ndim == 2 && a->shape[0] == 2 && a->shape[1] == 3);
        CHECK(a->nbytes == 12 && b->nbytes == 16 && b->dtype == VP_DT_F32);
        /* data bytes are i*7+1: element 1 of a is bytes 2,3 = 15, 22 -> 0x160f */
        CHECK(vp_tensor_get(a, 1) == vp_bf16_to_f32(0x160f));
        unsigned char want[4] = {12 * 7 + 1, 13 * 7 + 1, 14 * 7 + 1, 15 * 7 + 1};
        CHECK(memcmp(b->data, want, 4) == 0);
        CHECK((const unsigned char *)a->data == f.map.data + f.data_offset);
    }
    vp_st_close(&f);
}

static void test_broken_files(void)
{
    /* truncated: the data ends before the last tensor does */
    craft("trunc.safetensors", T2("a.weight", "b.bias"), 20, 0);
    refuse_file("trunc.safetensors", "b.bias", "past the end");
    /* header length beyond the file */
    craft("hlen.safetensors", T2("a.weight", "b.bias"), 28, 1000000);
    refuse_file("hlen.safetensors", "header length 1000000", "past the end");
    craft("short.safetensors", "", 0, 3); /* 8 bytes of length only, claiming 3 more */
    refuse_file("short.safetensors", "header length 3", NULL);
    put_text("tiny.safetensors", "abc");
    refuse_file("tiny.safetensors", "too short", NULL);
    put_text("empty.safetensors", "");
    refuse_file("empty.safetensors", "empty", NULL);
    craft("badjson.safetensors", "{\"a\":{\"dtype\":\"BF16\",", 4, 0);
    refuse_file("badjson.safetensors", "not valid JSON", NULL);
    craft("array.safetensors", "[1,2]", 0, 0);
    refuse_file("array.safetensors", "JSON object", NULL);
    craft("dtype.safetensors",
          "{\"pos.ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16, 0);
    refuse_file("dtype.safetensors", "pos.ids", "I64");
    craft("f64.safetensors", "{\"x.w\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}",
          8, 0);
    refuse_file("f64.safetensors", "x.w", "F64");
    craft("size.safetensors",
          "{\"mlp.fc1.weight\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,10]}}", 10,
          0);
    refuse_file("size.safetensors", "mlp.fc1.weight", "12 bytes");
    craft("overflow.safetensors",
          "{\"huge\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4611686018427387904],"
          "\"data_offsets\":[0,8]}}",
          8, 0);
    refuse_file("overflow.safetensors", "huge", "overflows");
    craft("past.safetensors",
          "{\"w.past\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 16, 0);
    refuse_file("past.safetensors", "w.past", "past the end");
    craft("overlap.safetensors",
          "{\"first.w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
          "\"second.w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
          16, 0);
    refuse_file("overlap.safetensors", "first.w", "second.w");
    craft("gap.safetensors",
          "{\"g.a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
          "\"g.b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
          12, 0);
    refuse_file("gap.safetensors", "g.b", "no tensor");
    craft("trailing.safetensors", "{\"t.a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
          9, 0);
    refuse_file("trailing.safetensors", "trailing", NULL);
    craft("neg.safetensors", "{\"neg.w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}",
          4, 0);
    refuse_file("neg.safetensors", "neg.w", "shape[0]");
    craft("backwards.safetensors",
          "{\"back.w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4, 0);
    refuse_file("backwards.safetensors", "back.w", "begin <= end");
    craft("dup.safetensors",
          "{\"dup.w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
          "\"dup.w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
          8, 0);
    refuse_file("dup.safetensors", "dup.w", "duplicate");
    craft("meta.safetensors",
          "{\"__metadata__\":{\"format\":1},\"m.w\":{\"dtype\":\"F32\",\"shape\":[1],"
          "\"data_offsets\":[0,4]}}",
          4, 0);
    refuse_file("meta.safetensors", "__metadata__", NULL);
    craft("key.safetensors",
          "{\"k.w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"stride\":[1]}}", 4, 0);
    refuse_file("key.safetensors", "k.w", "stride");
    craft("dims.safetensors",
          "{\"d5\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, 0);
    refuse_file("dims.safetensors", "d5", "5 dimensions");
    craft("offs.safetensors", "{\"o.w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, 0);
    refuse_file("offs.safetensors", "o.w", "data_offsets");
    craft("nodtype.safetensors", "{\"n.w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, 0);
    refuse_file("nodtype.safetensors", "n.w", "dtype");
    craft("entry.safetensors", "{\"e.w\":[1,2]}", 0, 0);
    refuse_file("entry.safetensors", "e.w", "object");
}

/* Refusal of the checkpoint folder dir/sub. */
static void refuse_dir(const char *sub, const char *want1, const char *want2)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    vp_checkpoint ck;
    vp_error err = {0};
    int rc = vp_checkpoint_open(path, &ck, &err);
    CHECK_MSG(rc == -1, "%s was accepted", sub);
    if (rc == 0) {
        vp_checkpoint_close(&ck);
        return;
    }
    CHECK_MSG(strstr(err.message, want1), "%s: '%s' lacks '%s'", sub, err.message, want1);
    if (want2)
        CHECK_MSG(strstr(err.message, want2), "%s: '%s' lacks '%s'", sub, err.message, want2);
}

static void make_sub(const char *sub)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    CHECK(mkdir(path, 0755) == 0);
}

#define SHARD1 "model-00001-of-00002.safetensors"
#define SHARD2 "model-00002-of-00002.safetensors"
#define ENTRY(n, b, e) "\"" n "\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[" #b "," #e "]}"

static void write_shards(const char *sub)
{
    char name[128];
    make_sub(sub);
    snprintf(name, sizeof name, "%s/" SHARD1, sub);
    craft(name, "{" ENTRY("x.a", 0, 4) "," ENTRY("x.b", 4, 8) "}", 8, 0);
    snprintf(name, sizeof name, "%s/" SHARD2, sub);
    craft(name, "{" ENTRY("y.a", 0, 4) "}", 4, 0);
}

static void put_index(const char *sub, const char *map)
{
    char name[128], text[1024];
    snprintf(name, sizeof name, "%s/model.safetensors.index.json", sub);
    snprintf(text, sizeof text, "{\"metadata\":{\"total_size\":12},\"weight_map\":{%s}}", map);
    put_text(name, text);
}

static void test_sharded(void)
{
    const char *good = "\"x.a\":\"" SHARD1 "\",\"x.b\":\"" SHARD1 "\",\"y.a\":\"" SHARD2 "\"";
    write_shards("sh_ok");
    put_index("sh_ok", good);
    char path[128];
    snprintf(path, sizeof path, "%s/sh_ok", dir);
    vp_checkpoint ck;
    vp_error err = {0};
    int rc = vp_checkpoint_open(path, &ck, &err);
    CHECK_MSG(rc == 0, "%s", err.message);
    if (rc == 0) {
        CHECK(ck.n_files == 2 && ck.n == 3);
        long k = vp_checkpoint_find(&ck, "y.a");
        CHECK(k >= 0 && strstr(ck.files[ck.file_of[k]].path, SHARD2));
        CHECK(vp_checkpoint_find(&ck, "x.a") == 0 && vp_checkpoint_find(&ck, "nope") == -1);
        vp_checkpoint_close(&ck);
    }
    /* a shard the index names does not exist */
    make_sub("sh_missing");
    char name[128];
    snprintf(name, sizeof name, "sh_missing/" SHARD1);
    craft(name, "{" ENTRY("x.a", 0, 4) "," ENTRY("x.b", 4, 8) "}", 8, 0);
    put_index("sh_missing", good);
    refuse_dir("sh_missing", SHARD2, "missing");
    /* a tensor mapped to the other shard */
    write_shards("sh_wrong");
    put_index("sh_wrong", "\"x.a\":\"" SHARD1 "\",\"x.b\":\"" SHARD2 "\",\"y.a\":\"" SHARD2 "\"");
    refuse_dir("sh_wrong", "x.b", SHARD1);
    /* listed, but in no shard */
    write_shards("sh_absent");
    put_index("sh_absent", "\"x.a\":\"" SHARD1 "\",\"x.b\":\"" SHARD1 "\",\"y.a\":\"" SHARD2
                           "\",\"z.gone\":\"" SHARD2 "\"");
    refuse_dir("sh_absent", "z.gone", "missing");
    /* in a shard, but not listed */
    write_shards("sh_unlisted");
    put_index("sh_unlisted", "\"x.a\":\"" SHARD1 "\",\"y.a\":\"" SHARD2 "\"");
    refuse_dir("sh_unlisted", "x.b", "not listed");
    /* a broken shard names its file */
    write_shards("sh_broken");
    snprintf(name, sizeof name, "sh_broken/" SHARD2);
    craft(name, "{" ENTRY("y.a", 0, 4) "}", 2, 0);
    put_index("sh_broken", good);
    refuse_dir("sh_broken", SHARD2, "y.a");
    /* the index itself */
    make_sub("sh_badindex");
    put_text("sh_badindex/model.safetensors.index.json", "{\"weight_map\": [1]}");
    refuse_dir("sh_badindex", "weight_map", NULL);
    make_sub("sh_traversal");
    put_index("sh_traversal", "\"x.a\":\"../ok.safetensors\"");
    refuse_dir("sh_traversal", "../ok.safetensors", "x.a");
    make_sub("sh_none");
    refuse_dir("sh_none", "neither", NULL);
    /* a lone model.safetensors */
    make_sub("single");
    craft("single/model.safetensors", "{" ENTRY("s.a", 0, 4) "}", 4, 0);
    snprintf(path, sizeof path, "%s/single", dir);
    rc = vp_checkpoint_open(path, &ck, &err);
    CHECK_MSG(rc == 0, "%s", err.message);
    if (rc == 0) {
        CHECK(ck.n == 1 && ck.n_files == 1 && vp_checkpoint_find(&ck, "s.a") == 0);
        vp_checkpoint_close(&ck);
    }
}

/* An index naming many distinct shards is refused at the first missing one in about a
 * second: the distinct names were found by a linear scan per entry, quadratic (80k
 * names took 10 s, the 64 MiB the index may hold hours). SIGALRM fails the test. */
static void test_many_shard_names(void)
{
    enum { N = 300000 };
    make_sub("sh_many");
    char path[128];
    snprintf(path, sizeof path, "%s/sh_many/model.safetensors.index.json", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fputs("{\"weight_map\":{", f);
    for (int i = 0; i < N; i++)
        fprintf(f, "%s\"t.%d\":\"s%07d.safetensors\"", i ? "," : "", i, i);
    fputs("}}", f);
    CHECK(fclose(f) == 0);
    alarm(30);
    refuse_dir("sh_many", "s0000000.safetensors", "missing");
    alarm(0);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/vp_st_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_valid_file();
    test_broken_files();
    test_sharded();
    test_many_shard_names();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_summary("test_model_safetensors");
}
