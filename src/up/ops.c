/* SPDX-License-Identifier: Apache-2.0 */
/* Scale and rollout, the two operations that change a running service (see
 * docs/internals/up.md). One operation runs per service at a time; the control request
 * that started it is answered when it ends.
 *
 * Rollout, for each replica in turn: start a replacement with the same replica number
 * and new ports; wait until it is ready (health and registry passing) and, when a
 * gateway cluster routes to the service, until the gateway lists it; then drain the old
 * one (deregister, wait until the gateway has dropped it, grace, SIGTERM) and wait
 * until it is gone. The service never has fewer ready replicas than before. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "up/control.h"
#include "up/supervisor.h"

static unsigned count_active(const struct tr_up_svc *svc, unsigned *ready)
{
    unsigned n = 0;
    unsigned r = 0;
    struct tr_list *it;
    for (it = svc->replicas.next; it != &svc->replicas; it = it->next) {
        const struct tr_up_replica *rep = tr_container_of(it, struct tr_up_replica, link);
        if (rep->lc == TR_UP_LC_ACTIVE) {
            n++;
            r += rep->ready;
        }
    }
    if (ready != NULL) {
        *ready = r;
    }
    return n;
}

static bool leaving(const struct tr_up_svc *svc)
{
    struct tr_list *it;
    for (it = svc->replicas.next; it != &svc->replicas; it = it->next) {
        const struct tr_up_replica *rep = tr_container_of(it, struct tr_up_replica, link);
        if (rep->lc != TR_UP_LC_ACTIVE) {
            return true;
        }
    }
    return false;
}

static void op_free(struct tr_up_op *op)
{
    tr_free_null(&op->old);
    tr_free_null(&op);
}

/* Ends the operation, answering its request with `status` and `body` (stolen). */
static void op_finish(struct tr_up_svc *svc, int status, json_t *body)
{
    struct tr_up_op *op = svc->op;
    svc->op = NULL;
    if (op->req != NULL) {
        tr_up__control_reply(op->req, status, body);
    } else {
        json_decref(body);
    }
    op_free(op);
    tr_up__wake(svc->up);
}

static void op_fail(struct tr_up_svc *svc, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void op_fail(struct tr_up_svc *svc, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    tr_up_logs_note(&svc->up->logs, "%s", msg);
    op_finish(svc, status, json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg));
}

static struct tr_up_op *op_new(struct tr_up_svc *svc, enum tr_up_op_kind kind,
                               struct tr_http_req *req)
{
    struct tr_up_op *op = tr_xcalloc(1, sizeof(*op));
    op->kind = kind;
    op->svc = svc;
    op->req = req;
    op->started_ms = uv_now(&svc->up->loop);
    op->from = count_active(svc, NULL);
    return op;
}

/* ---- scale ---- */

static int by_index_desc(const void *a, const void *b)
{
    const struct tr_up_replica *ra = *(struct tr_up_replica *const *)a;
    const struct tr_up_replica *rb = *(struct tr_up_replica *const *)b;
    if (ra->index != rb->index) {
        return ra->index < rb->index ? 1 : -1;
    }
    return ra->gen < rb->gen ? 1 : (ra->gen > rb->gen ? -1 : 0);
}

/* The active replicas, sorted by replica number, highest first. Caller frees. */
static struct tr_up_replica **active_sorted(struct tr_up_svc *svc, size_t *n)
{
    size_t cap = count_active(svc, NULL);
    struct tr_up_replica **v = tr_xcalloc(cap + 1, sizeof(*v));
    size_t k = 0;
    struct tr_list *it;
    for (it = svc->replicas.next; it != &svc->replicas; it = it->next) {
        struct tr_up_replica *rep = tr_container_of(it, struct tr_up_replica, link);
        if (rep->lc == TR_UP_LC_ACTIVE) {
            v[k++] = rep;
        }
    }
    qsort(v, k, sizeof(*v), by_index_desc);
    *n = k;
    return v;
}

static bool index_used(struct tr_up_replica *const *v, size_t n, unsigned index)
{
    for (size_t i = 0; i < n; i++) {
        if (v[i]->index == index) {
            return true;
        }
    }
    return false;
}

int tr_up__scale(struct tr_up_svc *svc, unsigned n, struct tr_http_req *req)
{
    if (svc->op != NULL) {
        return -EBUSY;
    }
    struct tr_up_op *op = op_new(svc, TR_UP_OP_SCALE, req);
    op->to = n;
    svc->op = op;
    svc->desired = n;
    size_t count;
    struct tr_up_replica **v = active_sorted(svc, &count);
    tr_up_logs_note(&svc->up->logs, "scaling %s from %zu to %u replicas", svc->def->name, count, n);
    if (n > count) {
        /* Fill the lowest free replica numbers. */
        unsigned index = 1;
        for (size_t added = count; added < n; added++) {
            while (index_used(v, count, index)) {
                index++;
            }
            struct tr_up_replica *r = tr_up__replica_new(svc, index, 0);
            index++;
            if (r != NULL) {
                tr_up__replica_start(r);
            }
        }
    } else {
        for (size_t i = 0; i < count - n; i++) {
            tr_up__replica_drain(v[i]);
        }
    }
    tr_free_null(&v);
    tr_up__wake(svc->up);
    return 0;
}

static void scale_tick(struct tr_up_svc *svc, uint64_t now)
{
    struct tr_up_op *op = svc->op;
    unsigned ready;
    unsigned active = count_active(svc, &ready);
    bool done = ready == active && active == op->to && !leaving(svc);
    uint64_t took = now - op->started_ms;
    if (done) {
        tr_up_logs_note(&svc->up->logs, "%s scaled from %u to %u replicas in %" PRIu64 " ms",
                        svc->def->name, op->from, op->to, took);
        op_finish(svc, 200,
                  json_pack("{s:s, s:i, s:i, s:i, s:I}", "service", svc->def->name, "from",
                            (int)op->from, "to", (int)op->to, "ready", (int)ready, "duration_ms",
                            (json_int_t)took));
        return;
    }
    if (took > svc->up->m->startup_timeout_ms + TR_UP_GATEWAY_DRAIN_MS) {
        op_fail(svc, 504, "timeout",
                "scaling %s to %u: only %u of %u replicas ready after %" PRIu64
                " ms (see trellis ps and trellis logs %s)",
                svc->def->name, op->to, ready, active, took, svc->def->name);
    }
}

/* ---- rollout ---- */

static void rollout_next(struct tr_up_svc *svc);

int tr_up__rollout(struct tr_up_svc *svc, struct tr_http_req *req)
{
    if (svc->op != NULL) {
        return -EBUSY;
    }
    size_t n;
    struct tr_up_replica **v = active_sorted(svc, &n);
    if (n == 0) {
        tr_free_null(&v);
        return -ENOENT;
    }
    /* Lowest replica number first. */
    for (size_t i = 0; i < n / 2; i++) {
        struct tr_up_replica *t = v[i];
        v[i] = v[n - 1 - i];
        v[n - 1 - i] = t;
    }
    struct tr_up_op *op = op_new(svc, TR_UP_OP_ROLLOUT, req);
    op->old = v;
    op->nold = n;
    svc->op = op;
    tr_up_logs_note(&svc->up->logs, "rolling out %s: %zu replicas", svc->def->name, n);
    rollout_next(svc);
    return 0;
}

static unsigned next_gen(const struct tr_up_svc *svc)
{
    unsigned gen = 0;
    struct tr_list *it;
    for (it = svc->replicas.next; it != &svc->replicas; it = it->next) {
        const struct tr_up_replica *rep = tr_container_of(it, struct tr_up_replica, link);
        if (rep->gen >= gen) {
            gen = rep->gen + 1;
        }
    }
    return gen;
}

static void rollout_next(struct tr_up_svc *svc)
{
    struct tr_up_op *op = svc->op;
    uint64_t now = uv_now(&svc->up->loop);
    while (op->next < op->nold && op->old[op->next] == NULL) {
        op->next++; /* gone on its own (it cannot be: operations do not overlap) */
    }
    if (op->next == op->nold) {
        uint64_t took = now - op->started_ms;
        tr_up_logs_note(&svc->up->logs,
                        "rollout of %s done: %u replicas replaced in %" PRIu64 " ms",
                        svc->def->name, op->replaced, took);
        op_finish(svc, 200,
                  json_pack("{s:s, s:i, s:I}", "service", svc->def->name, "replaced",
                            (int)op->replaced, "duration_ms", (json_int_t)took));
        return;
    }
    struct tr_up_replica *old = op->old[op->next];
    struct tr_up_replica *fresh = tr_up__replica_new(svc, old->index, next_gen(svc));
    if (fresh == NULL) {
        op_fail(svc, 503, "unavailable", "rollout of %s stopped: no free port for %s",
                svc->def->name, old->name);
        return;
    }
    op->fresh = fresh;
    op->fresh_ms = now;
    tr_up__replica_start(fresh);
}

static bool fresh_serving(const struct tr_up_svc *svc, const struct tr_up_replica *fresh)
{
    const struct tr_up *up = svc->up;
    if (!fresh->ready) {
        return false;
    }
    bool routed = up->has_gateway && up->gateway_ready && svc->gateway_clusters > 0;
    return !routed || fresh->in_gateway;
}

static void rollout_tick(struct tr_up_svc *svc, uint64_t now)
{
    struct tr_up_op *op = svc->op;
    struct tr_up_replica *fresh = op->fresh;
    if (fresh == NULL) {
        /* Waiting for the replaced replica to be gone. */
        if (op->old[op->next] == NULL) {
            op->next++;
            rollout_next(svc);
        }
        return;
    }
    if (fresh_serving(svc, fresh)) {
        struct tr_up_replica *old = op->old[op->next];
        tr_up_logs_note(&svc->up->logs,
                        "%s: new instance ready on port %u after %" PRIu64
                        " ms; draining the old one (port %u)",
                        fresh->name, (unsigned)fresh->app_port, now - op->fresh_ms,
                        (unsigned)old->app_port);
        op->fresh = NULL;
        op->replaced++;
        tr_up__replica_drain(old);
        if (old->lc == TR_UP_LC_STOPPED) {
            op->old[op->next] = NULL;
        }
        return;
    }
    if (now - op->fresh_ms > svc->up->m->startup_timeout_ms) {
        char exit_text[48];
        tr_up_proc_last_exit(&fresh->app, exit_text, sizeof(exit_text));
        const char *state = tr_up__replica_state(fresh);
        op->fresh = NULL;
        tr_up__replica_drain(fresh);
        op_fail(svc, 504, "timeout",
                "rollout of %s stopped: the new %s was not ready after %" PRIu64
                " ms (state %s%s%s, health %s, registry %s); %u of %zu replaced, the old "
                "replicas keep running",
                svc->def->name, fresh->name, now - op->fresh_ms, state,
                exit_text[0] ? ", last " : "", exit_text, tr_up__health_name(fresh->health),
                tr_up__reg_name(fresh->reg), op->replaced, op->nold);
    }
}

/* ---- common ---- */

void tr_up__op_tick(struct tr_up_svc *svc, uint64_t now)
{
    if (svc->op == NULL) {
        return;
    }
    switch (svc->op->kind) {
    case TR_UP_OP_SCALE:
        scale_tick(svc, now);
        return;
    case TR_UP_OP_ROLLOUT:
        rollout_tick(svc, now);
        return;
    default:
        TR_ASSERT(!"bad operation");
    }
}

void tr_up__op_forget(struct tr_up_svc *svc, struct tr_up_replica *r)
{
    struct tr_up_op *op = svc->op;
    if (op == NULL) {
        return;
    }
    for (size_t i = 0; i < op->nold; i++) {
        if (op->old[i] == r) {
            op->old[i] = NULL;
        }
    }
    if (op->fresh == r) {
        op->fresh = NULL;
    }
}

void tr_up__op_abort(struct tr_up_svc *svc, const char *why)
{
    if (svc->op == NULL) {
        return;
    }
    op_fail(svc, 503, "unavailable", "%s of %s interrupted: %s",
            svc->op->kind == TR_UP_OP_SCALE ? "scaling" : "rollout", svc->def->name, why);
}

void tr_up__op_detach_req(struct tr_up_svc *svc, struct tr_http_req *req)
{
    if (svc->op != NULL && svc->op->req == req) {
        svc->op->req = NULL;
    }
}

bool tr_up__op_busy(const struct tr_up_svc *svc)
{
    return svc->op != NULL;
}
