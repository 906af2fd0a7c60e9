/* SPDX-License-Identifier: Apache-2.0 */
/* Retention: deletes a topic's oldest whole segments while the log is over its size
 * budget or they hold only records older than the age limit. The active segment is
 * never deleted, so the newest records always survive. */
#ifndef TR_BROKER_RETENTION_H
#define TR_BROKER_RETENTION_H

#include <stdint.h>

#include "broker/log.h"

struct tr_bk_retention {
    uint64_t max_bytes;  /* 0 = unlimited */
    uint64_t max_age_ms; /* 0 = unlimited */
};

/* Applies `r` at wall-clock time now_ms. Returns how many segments were deleted, or a
 * negative errno if a deletion failed (those before it stay deleted). */
int tr_bk_retention_apply(struct tr_bk_log *log, const struct tr_bk_retention *r, uint64_t now_ms);

#endif
