/* SPDX-License-Identifier: Apache-2.0 */
/* Dapr resource files: `kind: Component` (apiVersion dapr.io/v1alpha1) and
 * `kind: Subscription` (dapr.io/v2alpha1 or v1alpha1) documents read from the
 * --components directory into plain structs. Parsing is a pure function of the file's
 * text, so it is fuzzed; loading a directory adds the files, in name order. Unknown
 * component types and malformed documents are errors naming the file, the position
 * and the problem; other kinds (Configuration, Resiliency, ...) are skipped with a
 * warning, as are components and subscriptions whose `scopes` leave out our app. */
#ifndef TR_SIDECAR_COMPONENTS_H
#define TR_SIDECAR_COMPONENTS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/mem.h"
#include "core/slice.h"

#define TR_SIDECAR_MAX_COMPONENTS 256
#define TR_SIDECAR_MAX_SUBSCRIPTIONS 1024
#define TR_SIDECAR_MAX_NAME 255 /* component names, topics, routes */

enum tr_sidecar_comp_kind {
    TR_SIDECAR_STATE = 0,
    TR_SIDECAR_PUBSUB,
    TR_SIDECAR_SECRETS,
    TR_SIDECAR_COMP_KIND_COUNT
};

enum tr_sidecar_comp_type {
    TR_SIDECAR_TYPE_STATE_TRELLIS = 0, /* state.trellis: the server's /v1/state API */
    TR_SIDECAR_TYPE_PUBSUB_TRELLIS,    /* pubsub.trellis: the server's /v1/broker API */
    TR_SIDECAR_TYPE_SECRETS_FILE,      /* secretstores.local.file */
    TR_SIDECAR_TYPE_SECRETS_ENV,       /* secretstores.local.env */
    TR_SIDECAR_TYPE_COUNT
};

/* One `spec.metadata` item: {name, value}. Values are strings as Dapr has them (a
 * YAML number or boolean is kept as its text). */
struct tr_sidecar_meta_item {
    char *name;  /* owned */
    char *value; /* owned */
};

struct tr_sidecar_component {
    char *name;    /* owned: metadata.name */
    char *type;    /* owned: spec.type as written, "state.trellis" */
    char *version; /* owned: spec.version, "v1" when absent */
    char *file;    /* owned: the file it came from */
    enum tr_sidecar_comp_kind kind;
    enum tr_sidecar_comp_type ctype;
    struct tr_sidecar_meta_item *meta; /* owned, [nmeta] */
    size_t nmeta;
    bool is_default; /* made up because there was no --components directory */
    /* The building block's state for this component (a loaded secret store...), set
     * by its module's init and freed by its cleanup. */
    void *impl;
};

struct tr_sidecar_route_rule {
    char *match; /* owned: a CEL expression as written, "" for none */
    char *path;  /* owned */
};

/* A declarative subscription. Programmatic ones (GET /dapr/subscribe) belong to the
 * pub/sub module. */
struct tr_sidecar_subscription {
    char *name;       /* owned: metadata.name */
    char *file;       /* owned */
    char *pubsubname; /* owned: spec.pubsubname */
    char *topic;      /* owned: spec.topic */
    char *route;      /* owned: spec.routes.default, else spec.route; NULL if only rules */
    struct tr_sidecar_route_rule *rules; /* owned, [nrules]: spec.routes.rules */
    size_t nrules;
    char *dead_letter_topic;             /* owned, or NULL */
    struct tr_sidecar_meta_item *meta;   /* owned, [nmeta]: spec.metadata (a map) */
    size_t nmeta;
    bool bulk;                           /* spec.bulkSubscribe.enabled */
    unsigned bulk_max_messages;          /* spec.bulkSubscribe.maxMessagesCount, 0 = default */
    unsigned bulk_max_await_ms;          /* spec.bulkSubscribe.maxAwaitDurationMs, 0 = default */
};

struct tr_sidecar_components {
    struct tr_sidecar_component *comps; /* owned, [ncomps] */
    size_t ncomps;
    struct tr_sidecar_subscription *subs; /* owned, [nsubs] */
    size_t nsubs;
    struct tr_buf warnings; /* "file: ...\n" per skipped document */
};

void tr_sidecar_components_init(struct tr_sidecar_components *c);
void tr_sidecar_components_dispose(struct tr_sidecar_components *c);

/* Parses one file's text (`name` stands for the file in messages; the text may hold
 * several YAML documents separated by `---` lines) and adds what it declares for app
 * `app_id` to `c`. Returns 0, or -EINVAL (or -EFBIG, -E2BIG for too many resources)
 * with err->msg naming the file, position and problem; on failure `c` is unchanged. */
TR_MUST_CHECK int tr_sidecar_components_parse(struct tr_sidecar_components *c, const char *name,
                                              const char *data, size_t len, const char *app_id,
                                              struct tr_conf_err *err);

/* Reads every *.yaml / *.yml file of `dir` in name order. Then checks the whole set:
 * no two components with the same name. Errors as above. */
TR_MUST_CHECK int tr_sidecar_components_load_dir(struct tr_sidecar_components *c,
                                                 const char *dir, const char *app_id,
                                                 struct tr_conf_err *err);

/* The defaults without --components: state store "statestore" (state.trellis) and
 * pub/sub "pubsub" (pubsub.trellis). */
void tr_sidecar_components_defaults(struct tr_sidecar_components *c);

/* Metadata value `name` of a component (or NULL). */
const char *tr_sidecar_component_meta(const struct tr_sidecar_component *comp, const char *name);

/* "state", "pubsub", "secretstores": the kind's type prefix. */
const char *tr_sidecar_comp_kind_name(enum tr_sidecar_comp_kind kind);

#endif
