/* SPDX-License-Identifier: Apache-2.0 */
/* The registry: the control plane's state (KV, catalog) owned by one thread and its
 * loop. Every change gets the next index; changes are persisted by a writer thread in
 * group commits, and both the acknowledgement of a write and the wake-up of blocking
 * queries wait for the commit that holds it. Watchers wait on topics — one per KV
 * key, per KV prefix, per service, plus the catalog as a whole — so a change wakes
 * only those who watch what changed. */
#ifndef TR_REGISTRY_REGISTRY_H
#define TR_REGISTRY_REGISTRY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/heap.h"
#include "core/list.h"
#include "core/mailbox.h"
#include "core/map.h"
#include "registry/kv.h"
#include "registry/persist.h"

struct tr_reg;
struct tr_catalog;
struct tr_state_embedded;

/* A parked blocking query. */
struct tr_reg_waiter {
    struct tr_list link;       /* in its topic's list */
    struct tr_heap_node timer; /* deadline, loop time */
    void (*wake)(struct tr_reg_waiter *w, bool timed_out);
};

/* A write waiting for durability. */
struct tr_reg_commit {
    struct tr_list link;
    uint64_t seq;
    void (*done)(struct tr_reg_commit *c, int status); /* 0 or -EIO */
};

struct tr_reg_writer {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct tr_list pending; /* records, guarded by lock */
    uint64_t pending_seq;   /* seq of the last record queued, guarded by lock */
    uint64_t pending_index; /* registry index at that point, guarded by lock */
    bool stop;              /* guarded by lock */
    bool running;
};

struct tr_reg {
    uv_loop_t loop;
    uv_thread_t thread;
    struct tr_mailbox inbox;      /* work from HTTP workers and the writer */
    uint64_t index;               /* last index handed out (>= 1) */
    struct tr_kv kv;
    struct tr_catalog *catalog;   /* services, checks, health (catalog.c) */
    struct tr_state_embedded *state; /* embedded state stores (src/state/embedded.c) */
    struct tr_map topics;         /* topic -> struct tr_list of waiters */
    struct tr_heap deadlines;     /* parked waiters by deadline */
    uv_timer_t deadline_timer;
    uint64_t timer_due;           /* when deadline_timer fires, or 0 */

    const struct tr_persist_ops *persist_ops;
    void *persist;
    struct tr_reg_writer writer;
    uint64_t seq;                 /* records queued so far */
    uint64_t committed_seq;       /* records known durable */
    uint64_t committed_index;     /* every change up to this index is durable */
    struct tr_list commit_waiters;
    struct tr_list pending_notify; /* topics to wake once their records are durable */
    bool persist_failed;          /* a commit failed: writes are refused */
    bool draining;                /* answer blocking queries at once */
    bool stopping;
    bool loop_ready;              /* loop and handles initialised */
    bool handles_closed;          /* inbox and timer closed (by on_stop or close) */

    /* Identity reported by /v1/agent/self and the catalog. */
    char node_name[128];
    char node_id[40];
    char datacenter[64];
    char address[64];
    uint64_t start_ms;
};

/* Main thread: opens the store in `data_dir`, replays it, and prepares the loop (not
 * yet running). Writes a message into err on failure. */
TR_MUST_CHECK int tr_reg_open(struct tr_reg *reg, const char *data_dir, char *err, size_t errlen);
/* Main thread: starts the registry thread and the writer thread. */
TR_MUST_CHECK int tr_reg_start(struct tr_reg *reg);
/* Any thread: answer every parked query now, then stop the threads once idle; joins. */
void tr_reg_stop(struct tr_reg *reg);
/* Main thread, after stop: frees everything. */
void tr_reg_close(struct tr_reg *reg);

/* Any thread: run `msg` on the registry thread. */
bool tr_reg_post(struct tr_reg *reg, struct tr_msg *msg);

/* ---- registry thread only ---- */

/* Hands out the next index. */
uint64_t tr_reg_next_index(struct tr_reg *reg);
/* Queues a record for the writer (takes ownership). */
void tr_reg_persist(struct tr_reg *reg, struct tr_reg_record *r);
/* Queues every record of `records` (emptied; takes ownership) so that they land in the
 * same commit: all of them are durable, or none. */
void tr_reg_persist_batch(struct tr_reg *reg, struct tr_list *records);
/* Marks `topic` changed; its waiters wake once everything queued so far is durable. */
void tr_reg_changed(struct tr_reg *reg, const char *topic);
/* KV change of `key`: wakes the key's topic and every prefix topic above it. */
void tr_reg_kv_changed(struct tr_reg *reg, struct tr_slice key);
/* Calls c->done once everything queued so far is durable (at once if it already is). */
void tr_reg_after_commit(struct tr_reg *reg, struct tr_reg_commit *c);
/* Parks `w` on `topic` until tr_reg_changed(topic) or `wait_ms` passes. */
void tr_reg_wait(struct tr_reg *reg, struct tr_reg_waiter *w, const char *topic, uint64_t wait_ms);
/* Unparks `w` without calling it (no-op if not parked). */
void tr_reg_unwait(struct tr_reg *reg, struct tr_reg_waiter *w);
bool tr_reg_waiting(const struct tr_reg_waiter *w);

/* From now on blocking queries answer at once; parked ones are answered now. */
void tr_reg_drain(struct tr_reg *reg);

/* Tests and fuzzing only, on the owning thread with the threads not started: commits
 * (commit = true) or drops everything queued, then acts as if it were durable. */
void tr_reg_settle(struct tr_reg *reg, bool commit);

/* Topic names. */
#define TR_TOPIC_CATALOG "catalog"
/* "svc:<name>" into buf. */
void tr_reg_topic_service(char *buf, size_t size, const char *name);

#endif
