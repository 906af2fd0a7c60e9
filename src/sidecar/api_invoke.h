/* SPDX-License-Identifier: Apache-2.0 */
/* Service invocation: /v1.0/invoke/{app-id}/method/{path} and the dapr-app-id header
 * form (see api_invoke.c). */
#ifndef TR_SIDECAR_API_INVOKE_H
#define TR_SIDECAR_API_INVOKE_H

#include <stdbool.h>

#include "http/server.h"

/* The header forms (a dapr-app-id header, or basic auth "dapr-app-id:<app>@host"):
 * the request's whole target is the method path. Returns false, without touching the
 * request, when it names no app. Runs as a TR_ROUTE_STREAM handler (the sidecar's
 * catch-all route). */
bool tr_sidecar_invoke_header_form(struct tr_http_req *req);

#endif
