/* SPDX-License-Identifier: Apache-2.0 */
/* The broker's HTTP API in `trellis server` (/v1/broker/...): an internal API for
 * sidecars. HTTP workers parse and validate requests (NDJSON batches included), then
 * hand them to the broker thread; answers come back through the worker's inbox. */
#ifndef TR_SERVER_BROKER_API_H
#define TR_SERVER_BROKER_API_H

#include "broker/broker.h"
#include "http/router.h"

/* Opens the broker under `data_dir` (configured from TRELLIS_BROKER_* variables),
 * starts its threads and adds its routes to `r`. On success *out owns the broker;
 * on failure logs why and returns a negative errno. Workers must be set up with
 * tr_srv_worker_init() (server/call.h): answers go to their inbox. */
TR_MUST_CHECK int tr_broker_api_start(struct tr_router *r, const char *data_dir,
                                      struct tr_broker **out);
/* After the HTTP workers are gone: stops, closes and frees the broker. */
void tr_broker_api_stop(struct tr_broker *bk);

#endif
