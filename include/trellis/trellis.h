/* SPDX-License-Identifier: Apache-2.0 */
/* libtrellis: the public SDK for writing Trellis (and Dapr) services in C. Include this
 * one header to get all of it:
 *   trellis/base.h     result codes, errors, logging
 *   trellis/json.h     JSON values (parse, build, read, dump)
 *   trellis/http.h     the service: routes, requests, replies, subscriptions
 *   trellis/sidecar.h  the sidecar client: invoke, state, publish
 * Everything exported is marked TRELLIS_API; all other symbols in the library are
 * hidden. See docs/sdk.md for a complete example and the threading model. */
#ifndef TRELLIS_TRELLIS_H
#define TRELLIS_TRELLIS_H

#include "trellis/base.h"
#include "trellis/http.h"
#include "trellis/json.h"
#include "trellis/sidecar.h"

#endif
