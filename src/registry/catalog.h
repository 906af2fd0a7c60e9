/* SPDX-License-Identifier: Apache-2.0 */
/* The catalog: the services and checks registered through the agent API on this one
 * node, their health, and the indexes blocking queries wait on. Services are grouped
 * by name; each name keeps the index of the last change under it (removals included,
 * so it never goes back), which is what lets a change to one service wake only the
 * watchers of that service. Definitions are kept as canonical JSON (catalog_def.c),
 * the health checker runs on the registry loop (health.c). Registry thread only,
 * except the life-cycle calls marked otherwise. */
#ifndef TR_REGISTRY_CATALOG_H
#define TR_REGISTRY_CATALOG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/heap.h"
#include "core/list.h"
#include "core/map.h"
#include "core/slice.h"
#include "registry/persist.h"

struct tr_reg;
struct tr_catalog;
struct tr_http_client;
struct tr_cat_probe;

/* Topic woken by every catalog change (services and checks, any name). */
#define TR_TOPIC_HEALTH "health"

#define TR_CAT_MAX_ID 512      /* bytes in a service or check ID or name */
#define TR_CAT_OUTPUT_MAX 4096 /* default OutputMaxSize, as Consul's */
#define TR_CAT_DEFAULT_TIMEOUT_MS 10000
#define TR_CAT_MIN_INTERVAL_MS 100 /* shorter intervals are raised to this */

enum tr_check_status {
    TR_CHECK_PASSING = 0,
    TR_CHECK_WARNING,
    TR_CHECK_CRITICAL,
    TR_CHECK_STATUS_COUNT
};

enum tr_check_type {
    TR_CHECK_TTL = 0,
    TR_CHECK_HTTP,
    TR_CHECK_TCP,
    TR_CHECK_MAINT, /* service maintenance mode: always critical, never run */
    TR_CHECK_TYPE_COUNT
};

/* All instances registered under one service name. Never freed before the catalog:
 * once its last instance is gone it stays as a tombstone holding the name's index. */
struct tr_cat_name {
    char *name;               /* owned */
    struct tr_list instances; /* struct tr_cat_service, registration order */
    size_t count;
    uint64_t index;            /* last change under this name, removals included */
    struct tr_list dirty_link; /* in a transaction's dirty list while it runs */
};

struct tr_cat_service {
    struct tr_list name_link;  /* in group->instances */
    struct tr_cat_name *group; /* borrowed; outlives the service */
    char *id;                  /* owned */
    json_t *def;               /* owned reference: canonical definition (catalog_def.c) */
    struct tr_list checks;     /* struct tr_cat_check, by svc_link */
    uint64_t create_index;
    uint64_t modify_index;
};

struct tr_cat_check {
    struct tr_list svc_link;        /* in service->checks, or catalog->node_checks */
    struct tr_list reap_link;       /* in catalog->reapable while dcsa_ms > 0 */
    struct tr_cat_service *service; /* borrowed; NULL for a node-level check */
    char *id;                       /* owned */
    json_t *def;                    /* owned reference: canonical definition */
    enum tr_check_type type;
    /* From def, for the checker. */
    char *host; /* owned: HTTP/TCP host (name or address) */
    uint16_t port;
    char *path; /* owned: HTTP origin-form target, "/" at least */
    uint64_t interval_ms;
    uint64_t timeout_ms;
    uint64_t ttl_ms;
    uint64_t dcsa_ms; /* DeregisterCriticalServiceAfter; 0 = never */
    uint64_t success_before_passing;
    uint64_t failures_before_critical;
    size_t output_max;
    /* State. */
    enum tr_check_status status;
    char *output; /* owned, never NULL */
    uint64_t create_index;
    uint64_t modify_index;
    /* Checker (health.c). */
    struct tr_heap_node sched;  /* next run, probe deadline, or TTL expiry */
    struct tr_cat_probe *probe; /* in flight, or NULL */
    uint64_t critical_since;    /* loop ms when it turned critical; 0 otherwise */
    uint64_t successes;         /* consecutive passing results */
    uint64_t failures;          /* consecutive critical results */
};

/* The checker's state (health.c). */
struct tr_cat_health {
    struct tr_heap schedule;     /* checks by sched key */
    uv_timer_t timer;            /* fires at the schedule's minimum */
    uint64_t timer_due;          /* when `timer` fires, or 0 */
    uv_timer_t reap_timer;       /* DeregisterCriticalServiceAfter, every second */
    struct tr_http_client *http; /* owned; closed by tr_catalog_stop() */
    struct tr_list probes;       /* struct tr_cat_probe in flight or closing */
    bool started;
    bool stopping;
};

struct tr_catalog {
    struct tr_reg *reg;
    struct tr_map services;     /* id -> struct tr_cat_service (owned) */
    struct tr_map checks;       /* id -> struct tr_cat_check (owned) */
    struct tr_map names;        /* name -> struct tr_cat_name (owned) */
    struct tr_list node_checks; /* checks with no service */
    struct tr_list reapable;    /* checks with DeregisterCriticalServiceAfter */
    struct tr_list restored;    /* checks loaded before their service (startup) */
    uint64_t node_index;        /* last change of a node-level check */
    uint64_t catalog_index;     /* last change of a service definition or the set */
    uint64_t all_index;         /* last change of anything in the catalog */
    struct tr_cat_health health;
};

/* ---- life cycle (as registry.c calls them) ---- */

struct tr_catalog *tr_catalog_new(struct tr_reg *reg);
/* Main thread at startup: replays one persisted catalog object. */
void tr_catalog_restore(struct tr_reg *reg, const struct tr_reg_record *r);
/* Main thread: all records replayed. */
void tr_catalog_loaded(struct tr_reg *reg);
/* Registry thread: start health checking. */
void tr_catalog_start(struct tr_reg *reg);
/* Registry thread: stop checks and close every handle the catalog owns; the close
 * callbacks run as the loop winds down. */
void tr_catalog_stop(struct tr_reg *reg);
/* Main thread, after the registry loop has ended. */
void tr_catalog_free(struct tr_reg *reg);

/* ---- definitions (catalog_def.c): Consul's JSON in, canonical JSON out ---- */

/* Go duration syntax ("10s", "1m30s", "1.5s", "250ms", "100us", "0"); returns 0 and the
 * duration in milliseconds rounded up, or -EINVAL (negative, no unit, bad unit). */
int tr_cat_parse_duration(struct tr_slice s, uint64_t *ms);
/* Go's time.Duration.String() for a whole number of ms: "10s", "1m30s", "500ms". */
void tr_cat_format_duration(uint64_t ms, char *buf, size_t size);

/* Parses a service registration body (PascalCase or snake_case field names). On
 * success returns 0 with *svc the canonical service definition and *checks an array
 * of canonical check definitions (inline checks get "service:<id>[:<n>]" IDs); the
 * caller owns both. On failure returns -EINVAL and a message naming the field. */
int tr_cat_parse_service(const json_t *in, json_t **svc, json_t **checks, char *err, size_t errlen);

/* Where a check definition comes from: decides defaults and what is allowed. */
struct tr_cat_check_ctx {
    const char *service_id;   /* inline checks: the service's ID; NULL otherwise */
    const char *service_name; /* inline checks: for the default Name */
    size_t position;          /* inline checks: 1-based position */
    size_t total;             /* inline checks: how many the service has */
    bool stored;              /* a persisted definition: internal types allowed */
};

/* Parses one check definition (a standalone registration, an inline service check or
 * a stored one). Returns 0 and the canonical definition in *out (caller owns), or
 * -EINVAL with a message naming the field. */
int tr_cat_parse_check(const json_t *in, const struct tr_cat_check_ctx *ctx, json_t **out,
                       char *err, size_t errlen);

/* "http://host:port/path?q" -> host, port (80 by default) and origin-form target.
 * Returns 0, -EPROTONOSUPPORT for https, or -EINVAL. */
int tr_cat_parse_http_url(const char *url, char *host, size_t hostlen, uint16_t *port,
                          const char **target);
/* "host:port" or "[v6]:port" -> host and port. Returns 0 or -EINVAL. */
int tr_cat_split_hostport(const char *s, char *host, size_t hostlen, uint16_t *port);

const char *tr_check_status_name(enum tr_check_status s);
/* "passing", "warning", "critical" -> status. Returns 0 or -EINVAL. */
int tr_check_status_parse(struct tr_slice s, enum tr_check_status *out);
const char *tr_check_type_name(enum tr_check_type t);

/* ---- mutations (registry thread) ----
 * Each takes the next index only if something changes, persists what changed (the
 * objects and the indexes of the names it touched), and marks the topics: the
 * service's "svc:<name>", TR_TOPIC_CATALOG when a service definition or the set of
 * services changes, TR_TOPIC_HEALTH always. Watchers wake once the records are
 * durable. A write whose answer must wait for durability returns TR_CALL_COMMIT in the
 * caller (tr_reg_after_commit waits for everything queued, changed or not). */

/* Registers or replaces a service and its checks; takes ownership of `svc` and
 * `checks` (as tr_cat_parse_service made them). With replace_checks, the service's
 * checks not in `checks` are removed; otherwise they stay. A check that exists keeps
 * its status and output, as Consul does. */
void tr_catalog_register(struct tr_reg *reg, json_t *svc, json_t *checks, bool replace_checks);
/* Removes a service and its checks. Returns 0 or -ENOENT. */
int tr_catalog_deregister(struct tr_reg *reg, struct tr_slice id);
/* Registers a standalone check (takes ownership of `def`). Returns 0, or -ENOENT when
 * its ServiceID is not registered (`def` is released then). */
int tr_catalog_check_register(struct tr_reg *reg, json_t *def);
/* Removes a check. Returns 0 or -ENOENT. */
int tr_catalog_check_deregister(struct tr_reg *reg, struct tr_slice id);
/* TTL update (pass/warn/fail/update): sets status and output and restarts the TTL.
 * Returns 0, -ENOENT for an unknown check, -EINVAL when it is not a TTL check. */
int tr_catalog_check_update(struct tr_reg *reg, struct tr_slice id, enum tr_check_status status,
                            struct tr_slice output);
/* Service maintenance mode on or off. Returns 0 or -ENOENT for an unknown service. */
int tr_catalog_maintenance(struct tr_reg *reg, struct tr_slice service_id, bool enable,
                           struct tr_slice reason);

/* ---- reads (registry thread) ---- */

struct tr_cat_service *tr_catalog_service(const struct tr_catalog *cat, struct tr_slice id);
struct tr_cat_check *tr_catalog_check(const struct tr_catalog *cat, struct tr_slice id);
struct tr_cat_name *tr_catalog_name(const struct tr_catalog *cat, struct tr_slice name);
/* The index a watcher of service `name` sees: the name's index, node-level check
 * changes included; at least 1. */
uint64_t tr_catalog_service_index(const struct tr_catalog *cat, struct tr_slice name);
/* Every service (or check), sorted by ID, in an array the caller frees. */
size_t tr_catalog_services_sorted(const struct tr_catalog *cat, struct tr_cat_service ***out);
size_t tr_catalog_checks_sorted(const struct tr_catalog *cat, struct tr_cat_check ***out);
/* Instances of one name sorted by ID (caller frees); 0 and NULL when none. */
size_t tr_catalog_instances_sorted(const struct tr_cat_name *group, struct tr_cat_service ***out);
/* Worst status over a service's checks and the node-level checks (passing if none). */
enum tr_check_status tr_catalog_service_health(const struct tr_catalog *cat,
                                               const struct tr_cat_service *s);

/* Convenience accessors into a canonical service definition. */
const char *tr_cat_service_name(const struct tr_cat_service *s);
const json_t *tr_cat_service_tags(const struct tr_cat_service *s);

/* ---- shared by catalog.c and health.c ---- */

/* A probe or the TTL clock produced a result: applies it (probes count against the
 * SuccessBeforePassing/FailuresBeforeCritical thresholds) and, if the status changed, takes an
 * index, persists the check and notifies. `output` is copied and cut at the check's output_max. */
void tr_cat__check_result(struct tr_catalog *cat, struct tr_cat_check *chk,
                          enum tr_check_status status, struct tr_slice output);
/* Removes the service `id` (the reaper); same as tr_catalog_deregister. */
int tr_cat__deregister(struct tr_catalog *cat, const char *id);

/* health.c: the checker. */
void tr_cat__health_start(struct tr_catalog *cat);
void tr_cat__health_stop(struct tr_catalog *cat);
/* A check was added or its definition changed: (re)schedule it. `fresh` runs a new
 * check at once; otherwise the first run is staggered over its interval. */
void tr_cat__health_schedule(struct tr_catalog *cat, struct tr_cat_check *chk, bool fresh);
/* A check is going away: cancel its probe and unschedule it. */
void tr_cat__health_forget(struct tr_catalog *cat, struct tr_cat_check *chk);
/* A TTL check was updated: restart its clock. */
void tr_cat__health_ttl_reset(struct tr_catalog *cat, struct tr_cat_check *chk);

#endif
