/* SPDX-License-Identifier: Apache-2.0 */
/* Calls: how an HTTP request reaches the registry thread and its answer comes back.
 * A worker copies what the request carries (path parameter, query, body) into a call
 * and posts it; the registry thread runs the route's exec function, which answers at
 * once, parks the call on a topic (blocking query), or waits for the commit that makes
 * its write durable; the answer is posted back to the worker, which writes it unless
 * the client has gone. The call belongs to whichever thread holds it; only the worker
 * frees it. */
#ifndef TR_SERVER_CALL_H
#define TR_SERVER_CALL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/errors.h"
#include "core/mailbox.h"
#include "http/server.h"
#include "registry/registry.h"

enum tr_call_result {
    TR_CALL_REPLY = 0, /* answer is ready in the call */
    TR_CALL_PARKED,    /* waiting on a topic (tr_srv_block) */
    TR_CALL_COMMIT,    /* a write: answer once durable */
};

struct tr_srv_call;
typedef enum tr_call_result tr_srv_exec(struct tr_reg *reg, struct tr_srv_call *c);

/* Per HTTP worker. */
struct tr_srv_worker {
    struct tr_mailbox inbox; /* answers from the registry thread */
    struct tr_reg *reg;
};

struct tr_srv_call {
    struct tr_msg msg;
    struct tr_srv_worker *worker;
    struct tr_http_req *req; /* worker thread only; NULL once the client is gone */
    tr_srv_exec *exec;
    struct tr_arena arena;   /* everything below that is copied */

    /* Inputs. */
    struct tr_slice method;
    struct tr_slice param;   /* the route's path parameter, percent-decoded */
    struct tr_slice query;   /* raw query string */
    struct tr_slice body;
    struct tr_slice if_match; /* If-Match request header (state API), empty if absent */
    uint64_t min_index;      /* ?index= (0: not blocking) */
    uint64_t wait_ms;        /* ?wait= with jitter, capped at 10 min */

    /* Registry side. */
    struct tr_reg_waiter waiter;
    struct tr_reg_commit commit;
    bool timed_out;          /* the blocking wait ran out (or the server drains) */

    /* Answer. */
    int status;
    uint64_t index;          /* X-Consul-Index; 0 = not sent */
    struct tr_slice content_type;
    struct tr_slice etag;    /* ETag response header (in the arena); empty = not sent */
    struct tr_buf out;       /* response body */
};

/* Adds a route whose requests run `exec` on the registry thread. */
TR_MUST_CHECK int tr_srv_route(struct tr_router *r, const char *method, const char *pattern,
                               tr_srv_exec *exec);

/* ---- helpers for exec functions (registry thread) ---- */

/* Query parameter, percent-decoded into the call's arena. */
bool tr_srv_query(struct tr_srv_call *c, const char *name, struct tr_slice *value);
/* Query flag present ("?recurse", "?recurse=true"); false for "=false"/"=0". */
bool tr_srv_query_flag(struct tr_srv_call *c, const char *name);
/* Unsigned integer parameter: returns 1 if present and valid, 0 if absent, -1 after
 * setting a 400 answer naming the parameter. */
int tr_srv_query_u64(struct tr_srv_call *c, const char *name, uint64_t *out);
/* Every occurrence of a repeated parameter ("?tag=a&tag=b"), percent-decoded into the
 * call's arena, in order: fills up to `max` and returns how many there are in all. */
size_t tr_srv_query_all(struct tr_srv_call *c, const char *name, struct tr_slice *out,
                        size_t max);

/* Blocking-query gate: parks the call on `topic` when the client asked to wait for an
 * index beyond `index`; otherwise returns TR_CALL_REPLY and sets c->index. */
enum tr_call_result tr_srv_block(struct tr_reg *reg, struct tr_srv_call *c, const char *topic,
                                 uint64_t index);

/* Answers: JSON (takes the reference), raw bytes, or an error
 * {"error":{"code","message"}}. Each returns TR_CALL_REPLY for convenience. */
enum tr_call_result tr_srv_reply_json(struct tr_srv_call *c, int status, json_t *json);
enum tr_call_result tr_srv_reply_raw(struct tr_srv_call *c, int status, struct tr_slice type,
                                     struct tr_slice body);
enum tr_call_result tr_srv_reply_error(struct tr_srv_call *c, enum tr_err e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Parses c->body as a JSON object; on failure sets a 400 naming the problem and
 * returns NULL. */
json_t *tr_srv_body_json(struct tr_srv_call *c);

/* Runs one request synchronously on the calling thread, which must own `reg` (its
 * threads not started): for unit tests and fuzzing. Matches `target` ("/v1/kv/a?raw")
 * against the router, runs the exec function, and returns the answer's status; the
 * body is appended to `out` when non-NULL. Parked calls are answered as if their wait
 * ran out; writes are answered without waiting for a commit. */
int tr_srv_call_sync(struct tr_reg *reg, const struct tr_router *router, const char *method,
                     struct tr_slice target, struct tr_slice body, struct tr_buf *out);

/* ---- server wiring ---- */

/* Worker thread: set up / tear down the worker's inbox. */
void tr_srv_worker_init(struct tr_srv_worker *sw, uv_loop_t *loop, struct tr_reg *reg);
void tr_srv_worker_close(struct tr_srv_worker *sw);

#endif
