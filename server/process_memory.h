/* The server process's memory as the kernel and the C heap count it (0 when unknown). */
#ifndef VP_SERVER_PROCESS_MEMORY_H
#define VP_SERVER_PROCESS_MEMORY_H

#include <stddef.h>

size_t vp_process_resident_bytes(void); /* resident set size */
size_t vp_process_heap_bytes(void);     /* bytes malloc has handed out and not taken back */

#endif
