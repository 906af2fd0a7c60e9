/* SPDX-License-Identifier: Apache-2.0 */
/* Topics: log + groups + offsets file (see topic.h). */
#include "broker/topic.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"

bool tr_bk_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > TR_BK_NAME_MAX) {
        return false;
    }
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.')) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

void tr_bk_topic_offsets_path(const struct tr_bk_topic *t, char *out, size_t n)
{
    snprintf(out, n, "%s/offsets", t->dir);
}

/* Reads "committed name" lines; a damaged line ends the file (offsets only ever lag). */
static void load_offsets(struct tr_bk_topic *t)
{
    char path[4096];
    tr_bk_topic_offsets_path(t, path, sizeof(path));
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return;
    }
    char line[TR_BK_NAME_MAX + 64];
    while (fgets(line, sizeof(line), f) != NULL) {
        char name[TR_BK_NAME_MAX + 1];
        uint64_t committed;
        if (sscanf(line, "%" SCNu64 " %255s", &committed, name) != 2 ||
            !tr_bk_name_valid(name, strlen(name))) {
            TR_LOG_WARN("broker", NULL, "%s: ignoring a damaged line", path);
            break;
        }
        struct tr_bk_group *g = tr_bk_topic_group(t, name, true);
        uint64_t first = tr_bk_log_first(&t->log);
        uint64_t start = committed < first ? first : committed;
        if (start > t->log.next_offset) {
            start = t->log.next_offset;
        }
        g->committed = g->next = g->persisted = start;
    }
    fclose(f);
}

int tr_bk_topic_open(struct tr_bk_topic **out, const char *root, const char *name,
                     uint64_t segment_bytes, size_t window, bool *created)
{
    struct tr_bk_topic *t = tr_xcalloc(1, sizeof(*t));
    size_t n = strlen(root) + strlen(name) + 2;
    t->dir = tr_xmalloc(n);
    snprintf(t->dir, n, "%s/%s", root, name);
    t->name = tr_xstrdup(name);
    t->window = window;
    tr_map_init(&t->groups);
    tr_list_init(&t->waiters);
    struct stat st;
    *created = stat(t->dir, &st) == -1;
    struct tr_bk_recovery rec;
    int rc = tr_bk_log_open(&t->log, t->dir, segment_bytes, &rec);
    if (rc != 0) {
        tr_free_null(&t->name);
        tr_free_null(&t->dir);
        tr_map_dispose(&t->groups);
        tr_free_null(&t);
        return rc;
    }
    if (rec.truncated_bytes > 0) {
        TR_LOG_WARN("broker", NULL,
                    "topic %s: recovered %" PRIu64 " records, cut %" PRIu64
                    " bytes in %u segment(s)",
                    name, rec.records, rec.truncated_bytes, rec.truncated_segments);
    }
    /* Whatever survived recovery is on disk already or is synced by the first round. */
    t->durable_end = t->log.next_offset;
    t->sync_end = t->durable_end;
    load_offsets(t);
    *out = t;
    return 0;
}

void tr_bk_topic_free(struct tr_bk_topic *t)
{
    size_t i = 0;
    const struct tr_map_slot *slot;
    while (tr_map_next(&t->groups, &i, &slot)) {
        struct tr_bk_group *g = slot->value;
        tr_bk_group_dispose(g);
        tr_free_null(&g);
    }
    tr_map_dispose(&t->groups);
    tr_bk_log_close(&t->log);
    tr_free_null(&t->name);
    tr_free_null(&t->dir);
    tr_free_null(&t);
}

struct tr_bk_group *tr_bk_topic_group(struct tr_bk_topic *t, const char *name, bool create)
{
    struct tr_bk_group *g = tr_map_get(&t->groups, tr_slice_cstr(name));
    if (g != NULL || !create) {
        return g;
    }
    g = tr_xcalloc(1, sizeof(*g));
    tr_bk_group_init(g, name, tr_bk_log_first(&t->log), t->window);
    tr_map_put(&t->groups, tr_slice_cstr(name), g);
    t->offsets_dirty = true;
    return g;
}

void tr_bk_topic_offsets_text(struct tr_bk_topic *t, struct tr_buf *out)
{
    size_t i = 0;
    const struct tr_map_slot *slot;
    while (tr_map_next(&t->groups, &i, &slot)) {
        struct tr_bk_group *g = slot->value;
        tr_buf_appendf(out, "%" PRIu64 " %s\n", g->committed, g->name);
        g->persisted = g->committed;
    }
    t->offsets_dirty = false;
}

void tr_bk_topic_after_retention(struct tr_bk_topic *t)
{
    uint64_t first = tr_bk_log_first(&t->log);
    size_t i = 0;
    const struct tr_map_slot *slot;
    while (tr_map_next(&t->groups, &i, &slot)) {
        struct tr_bk_group *g = slot->value;
        if (g->committed < first) {
            tr_bk_group_skip_to(g, first);
            t->offsets_dirty = true;
        }
    }
}
