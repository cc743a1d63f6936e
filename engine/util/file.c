#include "engine/util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Opens path read-only and refuses anything but a regular file. O_NONBLOCK: a FIFO in a
 * model folder (config.json, a shard) would otherwise block open() until a writer came,
 * hanging the load. The flag is cleared once the file is known to be regular. */
static int open_regular(const char *path, struct stat *st, vp_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return vp_fail(err, VP_ERR_IO, NULL, "cannot open %s: %s", path, strerror(errno));
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        return vp_fail(err, VP_ERR_IO, NULL, "%s is not a regular file", path);
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) /* blocking reads again: some network file systems honour the flag */
        fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    return fd;
}

int vp_read_file(const char *path, size_t max_bytes, uint8_t **out, size_t *len, vp_error *err)
{
    *out = NULL;
    *len = 0;
    struct stat st;
    int fd = open_regular(path, &st, err);
    if (fd < 0)
        return -1;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return vp_fail(err, VP_ERR_IO, NULL, "cannot open %s: %s", path, strerror(errno));
    }
    size_t size = (size_t)st.st_size;
    if (max_bytes && size > max_bytes) {
        fclose(f);
        return vp_fail(err, VP_ERR_TOO_LARGE, NULL, "%s is %zu bytes, over the limit of %zu", path,
                       size, max_bytes);
    }
    uint8_t *buf = malloc(size + 1);
    if (!buf) {
        fclose(f);
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory reading %s (%zu bytes)", path, size);
    }
    size_t got = size ? fread(buf, 1, size, f) : 0;
    fclose(f);
    if (got != size) { /* a file rewritten while read; it may hold a secret (a TLS key) */
        explicit_bzero(buf, got);
        free(buf);
        return vp_fail(err, VP_ERR_IO, NULL, "short read on %s", path);
    }
    buf[size] = 0;
    *out = buf;
    *len = size;
    return 0;
}

int vp_write_file(const char *path, const void *data, size_t len, vp_error *err)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return vp_fail(err, VP_ERR_IO, NULL, "cannot create %s: %s", path, strerror(errno));
    size_t put = len ? fwrite(data, 1, len, f) : 0;
    int close_rc = fclose(f);
    if (put != len || close_rc != 0)
        return vp_fail(err, VP_ERR_IO, NULL, "cannot write %s: %s", path, strerror(errno));
    return 0;
}

int vp_mmap_open(const char *path, vp_mmap *m, vp_error *err)
{
    m->data = NULL;
    m->len = 0;
    struct stat st;
    int fd = open_regular(path, &st, err);
    if (fd < 0)
        return -1;
    if (st.st_size == 0) {
        close(fd);
        return vp_fail(err, VP_ERR_MODEL, NULL, "%s is empty", path);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return vp_fail(err, VP_ERR_IO, NULL, "cannot map %s: %s", path, strerror(errno));
    m->data = p;
    m->len = (size_t)st.st_size;
    return 0;
}

void vp_mmap_close(vp_mmap *m)
{
    if (m->data)
        munmap((void *)m->data, m->len);
    m->data = NULL;
    m->len = 0;
}

int vp_path_join(char *buf, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(buf, cap, "%s/%s", dir, name);
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}
