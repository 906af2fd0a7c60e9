/* SPDX-License-Identifier: Apache-2.0 */
/* The status of a running `trellis up` as people read it: the table `trellis ps` prints
 * (and `trellis up` prints once everything is healthy), made from the status document
 * of the control API (GET /v1/status, `trellis ps --json`). */
#ifndef TR_UP_STATUS_H
#define TR_UP_STATUS_H

#include <jansson.h>

#include "core/buf.h"

/* Appends the table for `status` to `out`: one row for the server, the gateway and each
 * replica (state, pid, ports, restarts, health, registry status, RSS, last exit), then
 * the total RSS of the Trellis processes (server, gateway, sidecars) and of the
 * services. Fields missing from the document print as "-". */
void tr_up_status_format(json_t *status, struct tr_buf *out);

/* "12.3 MiB" for a size in KiB. `buf` at least 32 bytes. */
const char *tr_up_format_kib(unsigned long long kib, char *buf, size_t size);

#endif
