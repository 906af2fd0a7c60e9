/* SPDX-License-Identifier: Apache-2.0 */
/* The proxy's configuration: gateway.yaml (or the one-line --to form) parsed and
 * validated into an immutable, ref-counted snapshot. Every value the request path reads
 * is resolved here — cluster references become indexes, durations milliseconds, static
 * endpoints an endpoint set — so a request never looks at YAML, and a reload is "parse
 * a new snapshot, swap the pointer". Run-time state that must outlive a snapshot
 * (counters, breaker and ejection state, rate-limit buckets) is attached by name by
 * the owner (stats.h, guard.h). */
#ifndef TR_PROXY_CONFIG_H
#define TR_PROXY_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/addr.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/mem.h"
#include "core/slice.h"

struct tr_proxy_eps;
struct tr_proxy_guard;
struct tr_proxy_service;
struct tr_proxy_stats;

#define TR_PROXY_DEFAULT_TIMEOUT_MS 15000
#define TR_PROXY_MAX_ENDPOINT_WEIGHT 1000
#define TR_PROXY_MAX_RETRY_ATTEMPTS 10
#define TR_PROXY_RATE_DEFAULT_KEYS 10000

enum tr_proxy_lb {
    TR_PROXY_LB_ROUND_ROBIN = 0, /* smooth weighted round robin */
    TR_PROXY_LB_LEAST_REQUEST,   /* power of two choices on requests in flight */
    TR_PROXY_LB_RANDOM,          /* weighted random */
    TR_PROXY_LB_RING_HASH,       /* consistent hashing on hash_on */
    TR_PROXY_LB_COUNT
};

enum tr_proxy_hash_on {
    TR_PROXY_HASH_NONE = 0,
    TR_PROXY_HASH_HEADER,
    TR_PROXY_HASH_COOKIE,
    TR_PROXY_HASH_CLIENT_IP,
};

/* retry.on conditions */
enum {
    TR_PROXY_RETRY_CONNECT_FAILURE = 1u << 0, /* the connection could not be opened */
    TR_PROXY_RETRY_RESET = 1u << 1,           /* closed or reset before a response */
    TR_PROXY_RETRY_503 = 1u << 2,
    TR_PROXY_RETRY_GATEWAY_ERROR = 1u << 3, /* 502, 503, 504 */
    TR_PROXY_RETRY_5XX = 1u << 4,
};

struct tr_proxy_retry_policy {
    bool configured;             /* a retry: section was given */
    unsigned attempts;           /* retries after the first attempt */
    unsigned on;                 /* TR_PROXY_RETRY_* */
    uint64_t per_try_timeout_ms; /* 0 = only the cluster timeout */
    unsigned budget_percent;     /* 0 = no budget */
    /* Non-idempotent requests (POST, PATCH) carrying this header (non-empty) are retried
     * like idempotent ones: the upstream dedupes them by its value. NULL slice = none. */
    struct tr_slice idempotency_header;
};

struct tr_proxy_breaker_policy {
    bool configured;
    uint64_t max_connections;
    uint64_t max_pending;
    uint64_t max_requests;
    uint64_t consecutive_failures;
    uint64_t open_for_ms;
};

struct tr_proxy_outlier_policy {
    bool configured;
    uint64_t consecutive_5xx;
    uint64_t base_ejection_ms;
    uint64_t max_ejection_percent;
};

struct tr_proxy_cluster_config {
    const char *name;             /* in the config's arena */
    const char *service;          /* registry service name, or NULL for static endpoints */
    struct tr_proxy_service *svc; /* set by the owner before publication (service clusters) */
    struct tr_proxy_eps *eps;     /* static clusters: owned ref; NULL for service clusters */
    enum tr_proxy_lb lb;
    enum tr_proxy_hash_on hash_on;
    struct tr_slice hash_name; /* header or cookie name for hash_on */
    uint64_t timeout_ms;       /* request start (re-armed at body end) to response headers */
    struct tr_proxy_retry_policy retry;
    struct tr_proxy_breaker_policy breaker;
    struct tr_proxy_outlier_policy outlier;
    struct tr_proxy_stats *stats; /* owned ref; set by the owner before publication */
    struct tr_proxy_guard *guard; /* owned ref (breaker, outlier, queue state); ditto */
};

struct tr_proxy_header_match {
    struct tr_slice name;
    struct tr_slice value; /* exact, case-sensitive */
};

struct tr_proxy_split {
    unsigned cluster; /* index into clusters */
    uint32_t weight;
};

enum tr_proxy_rate_key {
    TR_PROXY_RATE_CLIENT_IP = 0,
    TR_PROXY_RATE_HEADER,
    TR_PROXY_RATE_ROUTE,
};

struct tr_proxy_route_config {
    const char *name; /* metrics label: name: or the prefix, made unique */
    struct tr_slice prefix;
    const struct tr_slice *methods; /* empty = any */
    size_t nmethods;
    const struct tr_proxy_header_match *headers;
    size_t nheaders;
    const struct tr_proxy_split *split; /* `cluster:` is a split of one */
    size_t nsplit;
    uint32_t split_total;
    bool has_mirror;
    unsigned mirror_cluster;
    unsigned mirror_percent;
    bool has_rate_limit;
    uint64_t rate_per_second;
    uint64_t rate_burst;
    enum tr_proxy_rate_key rate_key;
    struct tr_slice rate_header;
    uint64_t rate_max_keys; /* buckets kept (client_ip, header); 1 for `route` */
    bool has_rewrite;
    struct tr_slice rewrite_prefix;
    struct tr_proxy_stats *stats; /* owned ref; set by the owner before publication */
    struct tr_proxy_guard *guard; /* owned ref (rate limiter buckets); ditto */
};

struct tr_proxy_config {
    _Atomic unsigned refs;
    struct tr_arena arena; /* every string and array below */
    const char *source;    /* file name, or "--to" */
    const char *listen;    /* NULL when the file has none */
    const char *admin;     /* NULL: no admin listener */
    bool has_registry;
    struct tr_addr registry;
    const char *registry_host; /* "127.0.0.1:8500", for the Host header */
    struct tr_proxy_cluster_config *clusters;
    size_t nclusters;
    struct tr_proxy_route_config *routes;
    size_t nroutes;
    unsigned nworkers;
    uint64_t generation;    /* set by the owner: 1 for the first config, +1 per reload */
    struct tr_buf warnings; /* "file:line:col: ...\n" per key that is accepted but ignored */
};

/* Parses gateway YAML `data` (`name` stands for the file in messages) for `nworkers`
 * workers. On success stores a new snapshot with one reference in *out. On failure
 * writes "file:line:col: what" into err and returns -EINVAL (or the loader's error). */
TR_MUST_CHECK int tr_proxy_config_parse(const char *name, const char *data, size_t len,
                                        unsigned nworkers, struct tr_proxy_config **out,
                                        struct tr_conf_err *err);

/* As tr_proxy_config_parse() for the file at `path`. */
TR_MUST_CHECK int tr_proxy_config_load(const char *path, unsigned nworkers,
                                       struct tr_proxy_config **out, struct tr_conf_err *err);

/* The one-line form: `to` is "host:port,host:port,..." — one round-robin cluster named
 * "default" and one route "/" to it. Errors as above, positions omitted. */
TR_MUST_CHECK int tr_proxy_config_from_targets(const char *to, unsigned nworkers,
                                               struct tr_proxy_config **out,
                                               struct tr_conf_err *err);

/* Index of the cluster called `name`, or -1. */
int tr_proxy_config_cluster_index(const struct tr_proxy_config *cfg, struct tr_slice name);

/* Reference counting; any thread. The last unref frees the snapshot, its endpoint sets
 * and its stats references. NULL is a no-op for unref. */
void tr_proxy_config_ref(struct tr_proxy_config *cfg);
void tr_proxy_config_unref(struct tr_proxy_config *cfg);

const char *tr_proxy_lb_name(enum tr_proxy_lb lb);

#endif
