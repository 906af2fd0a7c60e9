/* SPDX-License-Identifier: Apache-2.0 */
/* The delivery engine. Once the app is ready it reads the app's subscriptions
 * (GET /dapr/subscribe, retried until the app answers) and adds the declarative ones.
 * Each subscription then runs a long-poll fetch loop against the broker (group = the
 * app id) and POSTs every event to its route as application/cloudevents+json, at most
 * `maxConcurrency` at a time. The app's answer decides: success acks; RETRY, errors and
 * timeouts nack with exponential backoff (the broker keeps the attempt count, so a
 * redelivery may go to another replica); DROP, 404 and exhausted retries go to the
 * dead-letter topic when there is one, then ack. Runs on worker 0 only. */
#ifndef TR_SIDECAR_SUBSCRIBER_H
#define TR_SIDECAR_SUBSCRIBER_H

#include "sidecar/sidecar.h"

struct tr_ps_subscriber;

/* Worker 0, at worker start: nothing runs until tr_ps_subscriber_start(). */
struct tr_ps_subscriber *tr_ps_subscriber_new(struct tr_sidecar_worker *sw);

/* The app is ready: discover the subscriptions, then fetch and deliver. Once. */
void tr_ps_subscriber_start(struct tr_ps_subscriber *s);

/* SIGTERM: stops fetching (a parked fetch is cancelled, so the broker hands nothing
 * more out), lets deliveries in flight finish and flushes acks, holding the worker until
 * then. */
void tr_ps_subscriber_drain(struct tr_ps_subscriber *s);

/* Cancels everything now and releases the hold; deliveries cut short are redelivered by
 * the broker after their ack timeout. Idempotent. */
void tr_ps_subscriber_stop(struct tr_ps_subscriber *s);

/* After stop: frees everything. */
void tr_ps_subscriber_free(struct tr_ps_subscriber *s);

#endif
