/* SPDX-License-Identifier: Apache-2.0 */
/* Pub/sub in the sidecar, shared by pubsub.c (the module: components, publishing,
 * /v1.0/metadata) and subscriber.c (subscriptions and delivery). Events are stored in
 * trellis server's broker (/v1/broker, docs/broker.md) as CloudEvents; each Dapr topic
 * maps to one broker topic, and an app's consumer group is its app id, so every event
 * reaches one replica of each subscribing app. */
#ifndef TR_SIDECAR_PUBSUB_H
#define TR_SIDECAR_PUBSUB_H

#include <jansson.h>
#include <pthread.h>

#include "core/mem.h"
#include "core/slice.h"
#include "sidecar/call.h"
#include "sidecar/sidecar.h"
#include "sidecar/subscription.h"

#define TR_PS_NAME_MAX 255 /* the broker's limit on topic and group names */

/* Maps a Dapr topic (or group) name to a broker name: bytes of [A-Za-z0-9.-] and '_'
 * stay, everything else becomes "_XX" (upper-case hex), and so does a '_' that is
 * followed by two upper-case hex digits, which keeps the mapping one-to-one while common
 * names ("orders", "order_created", "order.created") are unchanged. "." and ".." are
 * escaped too (they are directory names to the broker). Returns 0, -EINVAL for an
 * empty name, or -ENAMETOOLONG when the result exceeds TR_PS_NAME_MAX. */
TR_MUST_CHECK int tr_ps_broker_name(char out[TR_PS_NAME_MAX + 1], struct tr_slice name);

/* A pubsub.trellis component's settings, hung on its comp->impl by the module. */
struct tr_ps_component {
    const struct tr_sidecar_component *comp;
    char group[TR_PS_NAME_MAX + 1]; /* consumer group: metadata consumerID, else the app id */
    struct tr_ps_policy policy;     /* defaults for its subscriptions */
};

/* The module's process-wide state (sc->mod[index]). */
struct tr_ps_module {
    unsigned index;
    pthread_mutex_t lock;
    json_t *subscriptions; /* guarded by lock: what /v1.0/metadata lists */
};

/* The pub/sub module's state, and the settings of pub/sub component `name` (NULL when
 * there is no such pubsub.trellis component). */
struct tr_ps_module *tr_ps_module_of(const struct tr_sidecar *sc);
const struct tr_ps_component *tr_ps_component(const struct tr_sidecar *sc, struct tr_slice name);

/* Replaces the list /v1.0/metadata shows (any thread); takes the reference. */
void tr_ps_set_subscriptions(struct tr_sidecar *sc, json_t *list);

/* Appends one CloudEvent (JSON text) to broker topic `topic` (a broker name) on worker
 * `sw`; the server answers once it is durable. `cb` gets the server's reply. */
TR_MUST_CHECK int tr_ps_broker_publish(struct tr_sidecar_worker *sw, const char *topic,
                                       struct tr_slice event, tr_sidecar_call_cb *cb, void *data,
                                       struct tr_sidecar_call **out);

/* Names a call error (TR_SIDECAR_CALL_E_* or the HTTP client's) for logs and answers. */
const char *tr_ps_call_strerror(int err);

#endif
