/* SPDX-License-Identifier: Apache-2.0 */
/* The embedded broker of `trellis server`. One broker thread (its own loop and
 * mailbox) owns every topic; a writer thread makes appends durable. HTTP workers post
 * a struct tr_bk_req to the broker; the broker answers it (calls req->done on the
 * broker thread) at once, after the fsync round that holds its records (publish), or
 * when a parked fetch finds work or times out. Group commit: while one fsync round
 * runs, new appends wait for the next, so concurrent publishers share an fsync. */
#ifndef TR_BROKER_BROKER_H
#define TR_BROKER_BROKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "broker/log.h"
#include "broker/retention.h"
#include "broker/topic.h"
#include "core/buf.h"
#include "core/list.h"
#include "core/mailbox.h"
#include "core/map.h"

struct tr_bk_config {
    uint64_t segment_bytes;           /* TRELLIS_BROKER_SEGMENT_BYTES, default 64 MiB */
    struct tr_bk_retention retention; /* TRELLIS_BROKER_RETENTION_BYTES / _AGE */
    size_t max_payload;               /* TRELLIS_BROKER_MAX_PAYLOAD, default 1 MiB */
    size_t max_batch;                 /* TRELLIS_BROKER_MAX_BATCH events per publish, 10000 */
    size_t window;                    /* TRELLIS_BROKER_MAX_INFLIGHT per group, 8192 */
    uint64_t ack_timeout_ms;          /* default for fetch's ack_timeout, 30 s */
};

/* Reads the TRELLIS_BROKER_* environment over the defaults; -EINVAL names nothing,
 * the caller logs. */
TR_MUST_CHECK int tr_bk_config_from_env(struct tr_bk_config *cfg);

enum tr_bk_op {
    TR_BK_PUBLISH = 0,
    TR_BK_FETCH,
    TR_BK_ACK,
    TR_BK_NACK,
    TR_BK_TOPICS,
};

struct tr_broker;
struct tr_bk_req;
typedef void tr_bk_done_cb(struct tr_bk_req *r);

/* A request. Owned by the thread that holds it; the broker holds it from
 * tr_broker_submit() until it calls done. Inputs are owned by the request's creator. */
struct tr_bk_req {
    struct tr_msg msg;
    enum tr_bk_op op;
    tr_bk_done_cb *done; /* broker thread; the answer is in status/out */
    char topic[TR_BK_NAME_MAX + 1];
    char group[TR_BK_NAME_MAX + 1];
    const struct tr_bk_rec_in *recs; /* publish */
    size_t nrecs;
    size_t max;              /* fetch: deliveries at most */
    uint64_t wait_ms;        /* fetch: long-poll */
    uint64_t ack_timeout_ms; /* fetch: 0 = the configured default */
    bool ndjson;             /* fetch: one JSON object per line */
    const uint64_t *offsets; /* ack / nack */
    size_t noffsets;
    uint64_t delay_ms; /* nack: redelivery backoff */

    /* Broker side. */
    struct tr_broker *bk;
    struct tr_list link;  /* parked fetch or publish waiting for its round */
    uint64_t deadline_ms; /* parked fetch, loop time */
    uint64_t round;       /* publish: the sync round that makes it durable */

    /* Answer. */
    int status;
    const char *content_type;
    struct tr_buf out;
};

struct tr_bk_writer {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct tr_list jobs; /* guarded by lock */
    bool stop;           /* guarded by lock */
    bool running;
};

struct tr_broker {
    uv_loop_t loop;
    uv_thread_t thread;
    struct tr_mailbox inbox;
    uv_timer_t tick; /* parked-fetch deadlines, redelivery, retention, offsets */
    struct tr_bk_config cfg;
    char *root; /* owned: "<data dir>/broker" */
    int root_fd;
    bool root_dirty;      /* a topic directory was created */
    struct tr_map topics; /* name -> owned struct tr_bk_topic */
    struct tr_bk_writer writer;
    uint64_t round_started; /* last sync round handed to the writer */
    uint64_t round_done;    /* last sync round finished */
    bool round_running;
    bool round_wanted;             /* appends since the running round started */
    int round_error;               /* last failed round's error, sticky: refuse publishes */
    struct tr_list commit_waiters; /* publishes by round */
    uint64_t last_housekeeping;    /* loop time */
    bool started;
    bool stopping;
    bool draining;         /* the server drains: fetches answer at once, none parks */
    struct tr_buf scratch; /* record reads */
};

/* Opens the broker under "<data_dir>/broker", recovering every topic. */
TR_MUST_CHECK int tr_broker_open(struct tr_broker *bk, const char *data_dir,
                                 const struct tr_bk_config *cfg);
/* Starts the broker and writer threads. */
TR_MUST_CHECK int tr_broker_start(struct tr_broker *bk);
/* Any thread: hands `r` to the broker. False if the broker is stopping (not taken). */
bool tr_broker_submit(struct tr_broker *bk, struct tr_bk_req *r);
/* Any thread: asks the broker to answer `r` now if it is parked (client gone). */
void tr_broker_cancel(struct tr_broker *bk, struct tr_bk_req *r);
/* Any thread, when the server starts draining: parked fetches answer now with what they
 * have and later ones do not wait, so long polls do not hold the HTTP drain up. */
void tr_broker_drain(struct tr_broker *bk);
/* Answers parked fetches, waits for the running fsync round, joins the threads. */
void tr_broker_stop(struct tr_broker *bk);
void tr_broker_close(struct tr_broker *bk);

/* ---- broker thread internals shared with ops.c ---- */
struct tr_bk_topic *tr_broker__topic(struct tr_broker *bk, const char *name, bool create, int *err);
void tr_broker__answer(struct tr_bk_req *r);
void tr_broker__wait_round(struct tr_broker *bk, struct tr_bk_req *r);
uint64_t tr_broker__wall_ms(void);
/* ops.c: runs a request; returns true when answered, false when parked or waiting. */
bool tr_bk_ops_run(struct tr_broker *bk, struct tr_bk_req *r);
/* ops.c: retries a parked fetch (timed_out: answer whatever there is). */
bool tr_bk_ops_fetch_retry(struct tr_broker *bk, struct tr_bk_req *r, bool timed_out);

#endif
