/* SPDX-License-Identifier: Apache-2.0 */
/* The server's internal state API for sidecars: /v1/state/{store}/{app}/... over the
 * embedded state store (see docs/state.md). */
#ifndef TR_SERVER_STATE_API_H
#define TR_SERVER_STATE_API_H

#include "http/router.h"
#include "server/call.h"

/* Adds GET/DELETE /v1/state/{store}/{app}/{key} and POST/PUT /v1/state/{store}/{app}
 * (save), .../bulk and .../transaction. */
TR_MUST_CHECK int tr_state_api_routes(struct tr_router *r);

#endif
