/* SPDX-License-Identifier: Apache-2.0 */
/* A topic: its log, its consumer groups and the fetches parked on it. Consumers only
 * see records below durable_end, i.e. records already fsynced. Group offsets persist
 * in "<topic dir>/offsets" (one "committed name" line per group), rewritten lazily:
 * a stale file only means redelivery of already-acked messages after a restart. */
#ifndef TR_BROKER_TOPIC_H
#define TR_BROKER_TOPIC_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/group.h"
#include "broker/log.h"
#include "core/list.h"
#include "core/map.h"

#define TR_BK_NAME_MAX 255

struct tr_bk_topic {
    char *name; /* owned */
    char *dir;  /* owned */
    struct tr_bk_log log;
    struct tr_map groups;   /* name -> owned struct tr_bk_group */
    uint64_t durable_end;   /* offsets below are fsynced and visible to consumers */
    uint64_t sync_end;      /* log end when the running sync round started */
    struct tr_list waiters; /* parked fetches */
    size_t window;          /* per-group window for new groups */
    bool offsets_dirty;
};

/* True if `name` is 1..255 bytes of [A-Za-z0-9._-] and not "." or "..". */
bool tr_bk_name_valid(const char *name, size_t len);

/* Opens or creates the topic in "<root>/<name>", recovering its log and its groups'
 * offsets. *created tells whether the directory is new. */
TR_MUST_CHECK int tr_bk_topic_open(struct tr_bk_topic **out, const char *root, const char *name,
                                   uint64_t segment_bytes, size_t window, bool *created);
void tr_bk_topic_free(struct tr_bk_topic *t);

/* The group named `name`, created (starting at the oldest retained record) if
 * `create`; NULL if absent. */
struct tr_bk_group *tr_bk_topic_group(struct tr_bk_topic *t, const char *name, bool create);

/* Serialises every group's committed offset for the offsets file and marks them
 * persisted. */
void tr_bk_topic_offsets_text(struct tr_bk_topic *t, struct tr_buf *out);

/* Path of the offsets file (into `out`). */
void tr_bk_topic_offsets_path(const struct tr_bk_topic *t, char *out, size_t n);

/* After retention: groups forget what was deleted. */
void tr_bk_topic_after_retention(struct tr_bk_topic *t);

#endif
