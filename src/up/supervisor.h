/* SPDX-License-Identifier: Apache-2.0 */
/* Private to src/up/: the orchestrator's state, shared by supervisor.c (start-up,
 * shutdown, the poll loop), replica.c (one replica's life), ops.c (scale and rollout),
 * status.c and control.c. Everything runs on one libuv loop on the main thread.
 *
 * Polling: one timer ("tick") drives every wait. It fires every TR_UP_FAST_TICK_MS while
 * anything is waiting (start-up, a replica not ready, a drain, an operation) and every
 * TR_UP_SLOW_TICK_MS otherwise; each tick starts the probes that are due, and the probe
 * callbacks advance the state machines. */
#ifndef TR_UP_SUPERVISOR_H
#define TR_UP_SUPERVISOR_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/addr.h"
#include "core/list.h"
#include "http/router.h"
#include "http/server.h"
#include "up/logs.h"
#include "up/manifest.h"
#include "up/ports.h"
#include "up/probe.h"
#include "up/proc.h"
#include "up/up.h"

#define TR_UP_FAST_TICK_MS 20
#define TR_UP_SLOW_TICK_MS 1000
#define TR_UP_GATEWAY_DRAIN_MS 5000 /* longest wait for the gateway to drop a replica */
#define TR_UP_SIDECAR_WAIT_MS 2000  /* the app starts even if its sidecar is not up by then */

struct tr_up;
struct tr_up_svc;
struct tr_http_req;

enum tr_up_health {
    TR_UP_HEALTH_UNKNOWN = 0,
    TR_UP_HEALTH_PASSING,
    TR_UP_HEALTH_FAILING,
};

/* A replica's registration as the registry reports it: the worst of its checks. */
enum tr_up_reg {
    TR_UP_REG_MISSING = 0,
    TR_UP_REG_CRITICAL,
    TR_UP_REG_WARNING,
    TR_UP_REG_PASSING,
};

enum tr_up_lifecycle {
    TR_UP_LC_ACTIVE = 0, /* starting or serving */
    TR_UP_LC_DRAINING,   /* deregistered; waiting for the gateway to stop sending to it */
    TR_UP_LC_STOPPING,   /* SIGTERM sent to the app, then to the sidecar */
    TR_UP_LC_STOPPED,    /* both gone; freed once the handles are closed */
};

struct tr_up_replica {
    struct tr_list link; /* in svc->replicas */
    struct tr_up_svc *svc;
    unsigned index;  /* 1-based replica number: "order-2" */
    unsigned gen;    /* 0 for the first, +1 for each rollout replacement */
    char name[80];   /* "order-2" */
    char reg_id[96]; /* the registry service ID */
    uint16_t app_port;
    uint16_t sidecar_port; /* 0 without a sidecar */
    struct tr_up_proc app;
    struct tr_up_proc sidecar; /* initialised only when has_sidecar */
    bool has_sidecar;
    bool app_started; /* spawned at least once */
    uint64_t created_ms;
    enum tr_up_lifecycle lc;
    enum tr_up_health health; /* the app's own health endpoint (or TCP) */
    enum tr_up_reg reg;
    bool registered;             /* (without a sidecar) trellis up registered it */
    bool ready;                  /* health passing and registry passing */
    bool in_gateway;             /* the gateway's /clusters lists it */
    uint64_t ready_ms;           /* loop time it last became ready */
    uint64_t probe_ms;           /* loop time of the last health probe */
    struct tr_up_call *probe;    /* health probe in flight */
    struct tr_up_tcp *tcp;       /* TCP health or sidecar check in flight */
    struct tr_up_call *reg_call; /* register / deregister in flight */
    bool deregistered;           /* the drain's deregistration is done */
    uint64_t drain_ms;           /* loop time the drain started */
    uint64_t gone_ms;            /* loop time the gateway was seen without it (0: not yet) */
    int closes;                  /* proc closes pending before the struct is freed */
};

enum tr_up_op_kind {
    TR_UP_OP_SCALE = 0,
    TR_UP_OP_ROLLOUT,
};

/* A scale or rollout in progress on one service; answered when done. */
struct tr_up_op {
    enum tr_up_op_kind kind;
    struct tr_up_svc *svc;
    struct tr_http_req *req; /* the control request waiting for the answer, or NULL */
    uint64_t started_ms;
    unsigned from; /* replicas before */
    unsigned to;   /* scale: replicas wanted */
    /* rollout: */
    struct tr_up_replica **old; /* owned array: the replicas to replace, in order */
    size_t nold;
    size_t next;                 /* the index in old being replaced */
    struct tr_up_replica *fresh; /* its replacement, while it starts */
    uint64_t fresh_ms;
    unsigned replaced;
};

struct tr_up_svc {
    struct tr_up *up;
    const struct tr_up_service_def *def;
    unsigned desired;          /* replicas wanted */
    struct tr_list replicas;   /* struct tr_up_replica */
    struct tr_up_op *op;       /* at most one operation at a time */
    unsigned gateway_clusters; /* gateway clusters that route to this service */
};

enum tr_up_phase {
    TR_UP_PHASE_SERVER = 0, /* waiting for the server to answer */
    TR_UP_PHASE_CLEANUP,    /* removing registrations a previous run left behind */
    TR_UP_PHASE_STARTING,   /* gateway and replicas starting */
    TR_UP_PHASE_RUNNING,
    TR_UP_PHASE_STOPPING,
    TR_UP_PHASE_DONE,
};

enum tr_up_stop_stage {
    TR_UP_STOP_GATEWAY = 0,
    TR_UP_STOP_SERVICES,
    TR_UP_STOP_SERVER,
    TR_UP_STOP_FINISHED,
};

struct tr_up {
    uv_loop_t loop;
    const struct tr_up_manifest *m;
    const struct tr_up_options *opts;
    struct tr_up_env env;
    struct tr_up_logs logs;
    struct tr_up_ports ports;
    struct tr_up_http *http;
    char state_dir[4096];
    char control_path[4096];
    int lock_fd;
    enum tr_up_phase phase;
    enum tr_up_stop_stage stop_stage;
    uint64_t started_ms;
    uint64_t stop_ms; /* loop time the stop began */
    int exit_code;
    bool logs_open;
    bool fatal;       /* the start failed; stopping with exit code 1 */
    unsigned signals; /* stop signals received */
    /* server */
    struct tr_up_proc server;
    char server_listen[64]; /* "127.0.0.1:8500" */
    struct tr_addr server_addr;
    bool server_ready;
    struct tr_up_call *server_call;
    uint64_t server_poll_ms;
    /* gateway */
    bool has_gateway;
    struct tr_up_proc gateway;
    char gateway_listen[64];
    char gateway_admin[64];
    struct tr_addr gateway_admin_addr;
    char gateway_yaml[4096];
    bool gateway_ready;
    bool gateway_started;
    struct tr_up_call *gateway_call; /* /ready */
    uint64_t gateway_poll_ms;
    struct tr_up_call *clusters_call; /* /clusters */
    uint64_t clusters_ms;
    /* registry polling */
    struct tr_up_call *registry_call;
    uint64_t registry_ms;
    unsigned cleanup_pending;
    /* services */
    struct tr_up_svc *svcs;
    size_t nsvcs;
    /* the poll loop */
    uv_timer_t tick;
    uint64_t tick_due; /* loop time the tick timer fires next */
    /* control API */
    struct tr_router router;
    struct tr_http_server control;
    bool control_open;
    char control_addr[64];
    uv_signal_t sig_term;
    uv_signal_t sig_int;
    uv_signal_t sig_hup;
};

/* ---- supervisor.c ---- */

/* Something started waiting: make sure the next tick comes soon. */
void tr_up__wake(struct tr_up *up);
bool tr_up__server_usable(const struct tr_up *up);
/* Begins the orderly stop (idempotent). */
void tr_up__stop(struct tr_up *up, const char *why);

/* ---- replica.c ---- */

/* Creates replica `index` of `svc` (not started). Returns NULL, after logging why, when
 * no port is free. */
struct tr_up_replica *tr_up__replica_new(struct tr_up_svc *svc, unsigned index, unsigned gen);
void tr_up__replica_start(struct tr_up_replica *r);
/* One tick's worth of work: probes due, sidecar wait, registration, drain steps. */
void tr_up__replica_tick(struct tr_up_replica *r, uint64_t now);
/* Is it waiting for something (so the tick should be fast)? */
bool tr_up__replica_busy(const struct tr_up_replica *r, uint64_t now);
/* Starts the drain: deregister, wait for the gateway, grace, SIGTERM. */
void tr_up__replica_drain(struct tr_up_replica *r);
/* Shutdown: SIGTERM app and sidecar now (deregistering first when trellis up registered
 * it). */
void tr_up__replica_stop_now(struct tr_up_replica *r);
/* Applies the registry's view: `checks` is /v1/health/state/any. */
void tr_up__replica_registry(struct tr_up_replica *r, json_t *checks);
/* Applies the gateway's /clusters view. */
void tr_up__replica_gateway(struct tr_up_replica *r, json_t *clusters);
/* "running", "starting", "crashloop", "draining", ... */
const char *tr_up__replica_state(const struct tr_up_replica *r);
const char *tr_up__health_name(enum tr_up_health h);
const char *tr_up__reg_name(enum tr_up_reg r);

/* ---- ops.c ---- */

/* Starts scaling `svc` to `n`; answers `req` (may be NULL) when done. Returns 0, or
 * -EBUSY when another operation runs on the service. */
int tr_up__scale(struct tr_up_svc *svc, unsigned n, struct tr_http_req *req);
/* Starts a rolling restart of `svc`; answers `req` when done. 0, -EBUSY, or -ENOENT when
 * the service has no replica. */
int tr_up__rollout(struct tr_up_svc *svc, struct tr_http_req *req);
/* One tick of the service's operation. */
void tr_up__op_tick(struct tr_up_svc *svc, uint64_t now);
/* A replica is about to be freed: forget pointers to it. */
void tr_up__op_forget(struct tr_up_svc *svc, struct tr_up_replica *r);
/* The control client went away or trellis up stops: answer (if possible) and end. */
void tr_up__op_abort(struct tr_up_svc *svc, const char *why);
/* The control client of the operation went away: nothing to answer any more. */
void tr_up__op_detach_req(struct tr_up_svc *svc, struct tr_http_req *req);
bool tr_up__op_busy(const struct tr_up_svc *svc);

/* ---- status.c ---- */

/* The status document `trellis ps` prints (see docs/up.md). New reference. */
json_t *tr_up__status(struct tr_up *up);

#endif
