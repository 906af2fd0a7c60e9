/* SPDX-License-Identifier: Apache-2.0 */
/* Retention by size and age (see retention.h). */
#include "broker/retention.h"

#include <stdbool.h>

static bool over(const struct tr_bk_log *log, const struct tr_bk_retention *r, uint64_t now_ms)
{
    const struct tr_bk_segment *oldest = log->segs[0];
    if (r->max_bytes > 0 && log->total_bytes > r->max_bytes) {
        return true;
    }
    /* last_ts is the newest record in the segment: all of it is older than the limit. */
    return r->max_age_ms > 0 && oldest->count > 0 && oldest->last_ts + r->max_age_ms < now_ms;
}

int tr_bk_retention_apply(struct tr_bk_log *log, const struct tr_bk_retention *r, uint64_t now_ms)
{
    int dropped = 0;
    while (log->nsegs > 1 && over(log, r, now_ms)) {
        int rc = tr_bk_log_drop_oldest(log);
        if (rc != 0) {
            return rc;
        }
        dropped++;
    }
    return dropped;
}
