/* The server process's own memory, for /metrics: what the kernel holds resident and what
 * the C heap has handed out and not taken back. The second, read while the server is idle,
 * stays flat over any number of requests unless something is kept per request (the soak
 * test, tests/http/soak_memory.py, relies on it: resident size moves with the allocator's
 * trimming, this does not). */
#include "server/process_memory.h"

#include <malloc.h>
#include <stdio.h>
#include <unistd.h>

size_t vp_process_resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    unsigned long long size = 0, resident = 0;
    int n = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return n == 2 && page > 0 ? (size_t)resident * (size_t)page : 0;
}

size_t vp_process_heap_bytes(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd; /* chunks in use, in the arenas and mmapped alone */
#else
    return 0;
#endif
}
