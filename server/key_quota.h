/* Jobs in flight per API key: a key's `max_queued` (api_keys.h) bounds how many jobs its
 * requests may have waiting or running at once, so one client cannot fill the shared
 * queue and leave the others only 429s. Counted by the key's name, so the counts outlive
 * a reload of the keys. Thread-safe. */
#ifndef VP_KEY_QUOTA_H
#define VP_KEY_QUOTA_H

#include <stddef.h>

typedef struct vp_key_quota vp_key_quota;

vp_key_quota *vp_key_quota_new(void); /* NULL when out of memory */
void vp_key_quota_free(vp_key_quota *q);
/* Counts n more jobs for name when its count plus n stays within limit: 0. Else -1,
 * nothing counted, and *held (when not NULL) the jobs it has now; -2 when out of memory. */
int vp_key_quota_take(vp_key_quota *q, const char *name, size_t n, size_t limit, size_t *held);
/* Gives back n jobs taken for name. */
void vp_key_quota_give(vp_key_quota *q, const char *name, size_t n);
/* Jobs counted for name now. */
size_t vp_key_quota_count(vp_key_quota *q, const char *name);
/* Names with jobs counted now. */
size_t vp_key_quota_names(vp_key_quota *q);

#endif
