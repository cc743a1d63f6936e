/* The scheduler's clients (an API key's or a client certificate's name; "" for requests
 * without one) while they have jobs queued or running, and each one's virtual finish time
 * per priority, for fair sharing between clients (sched.c): start-time fair queueing, the
 * cost of a job being its tokens over its client's weight. A client's record lives while
 * it has jobs queued or running (so a job sent while its last one runs is tagged after
 * it), and the table never holds more records than there are such jobs. */
#ifndef VP_SCHED_CLIENTS_H
#define VP_SCHED_CLIENTS_H

#include <stddef.h>

#include "proto/request.h"

#define VP_SCHED_CLIENT_NAME_MAX 128 /* bytes of a name kept; longer ones are cut */

typedef struct sched_client {
    struct sched_client *next;           /* hash chain */
    double finish[VP_PRIORITY_LOW + 1];  /* virtual finish of its last queued job */
    size_t queued;                       /* its jobs in the queue */
    size_t running;                      /* its jobs taken and not finished */
    unsigned long long hash;
    char name[VP_SCHED_CLIENT_NAME_MAX + 1];
} sched_client;

typedef struct sched_clients {
    sched_client **buckets;
    size_t n_buckets, n;
    size_t n_queued;     /* records (not the shared one) with jobs queued */
    sched_client shared; /* requests without a name, and any record that cannot be made */
} sched_clients;

void sched_clients_init(sched_clients *c);
void sched_clients_free(sched_clients *c);
/* The record of name (NULL or "" = the shared one), made when missing; its queued count
 * is raised by one. Out of memory: the shared record (the job still queues, in the
 * order of the requests without a name). */
sched_client *sched_clients_join(sched_clients *c, const char *name);
/* One job of r left the queue unrun; the record goes when it has none queued or running. */
void sched_clients_leave(sched_clients *c, sched_client *r);
/* One job of r left the queue to run. */
void sched_clients_start(sched_clients *c, sched_client *r);
/* One running job of r finished; the record goes when it has none queued or running. */
void sched_clients_done(sched_clients *c, sched_client *r);
/* Records of clients with jobs queued (the shared one counted when it has some). */
size_t sched_clients_active(const sched_clients *c);

#endif
