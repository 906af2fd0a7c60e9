/* SPDX-License-Identifier: Apache-2.0 */
/* Consumer-group window (see group.h). */
#include "broker/group.h"

#include <errno.h>
#include <string.h>

static size_t round_pow2(size_t n)
{
    size_t p = 16;
    while (p < n) {
        p *= 2;
    }
    return p;
}

void tr_bk_group_init(struct tr_bk_group *g, const char *name, uint64_t start, size_t window)
{
    memset(g, 0, sizeof(*g));
    g->name = tr_xstrdup(name);
    g->committed = start;
    g->next = start;
    g->persisted = start;
    g->cap = round_pow2(window);
    g->win = tr_xcalloc(g->cap, sizeof(*g->win));
}

void tr_bk_group_dispose(struct tr_bk_group *g)
{
    tr_free_null(&g->win);
    tr_free_null(&g->name);
}

static struct tr_bk_slot *slot(const struct tr_bk_group *g, uint64_t offset)
{
    return &g->win[offset & (g->cap - 1)];
}

static bool due(const struct tr_bk_slot *s, uint64_t now_ms)
{
    return s->state != TR_BK_SLOT_ACKED && s->due_ms <= now_ms;
}

size_t tr_bk_group_poll(struct tr_bk_group *g, uint64_t now_ms, uint64_t end,
                        uint64_t ack_timeout_ms, struct tr_bk_delivery *out, size_t max)
{
    size_t n = 0;
    for (uint64_t o = g->committed; o < g->next && n < max; o++) {
        struct tr_bk_slot *s = slot(g, o);
        if (!due(s, now_ms)) {
            continue;
        }
        s->state = TR_BK_SLOT_INFLIGHT;
        s->attempts++;
        s->due_ms = now_ms + ack_timeout_ms;
        g->redelivered++;
        out[n++] = (struct tr_bk_delivery){o, s->attempts};
    }
    while (n < max && g->next < end && g->next - g->committed < g->cap) {
        struct tr_bk_slot *s = slot(g, g->next);
        *s = (struct tr_bk_slot){
            .due_ms = now_ms + ack_timeout_ms, .attempts = 1, .state = TR_BK_SLOT_INFLIGHT};
        g->unacked++;
        out[n++] = (struct tr_bk_delivery){g->next, 1};
        g->next++;
    }
    return n;
}

bool tr_bk_group_has_work(const struct tr_bk_group *g, uint64_t now_ms, uint64_t end)
{
    if (g->next < end && g->next - g->committed < g->cap) {
        return true;
    }
    for (uint64_t o = g->committed; o < g->next; o++) {
        if (due(slot(g, o), now_ms)) {
            return true;
        }
    }
    return false;
}

static void advance(struct tr_bk_group *g)
{
    while (g->committed < g->next && slot(g, g->committed)->state == TR_BK_SLOT_ACKED) {
        g->committed++;
    }
}

int tr_bk_group_ack(struct tr_bk_group *g, uint64_t offset)
{
    if (offset < g->committed) {
        return 1;
    }
    if (offset >= g->next) {
        return -ENOENT;
    }
    struct tr_bk_slot *s = slot(g, offset);
    if (s->state == TR_BK_SLOT_ACKED) {
        return 1;
    }
    s->state = TR_BK_SLOT_ACKED;
    g->unacked--;
    advance(g);
    return 0;
}

int tr_bk_group_nack(struct tr_bk_group *g, uint64_t offset, uint64_t now_ms, uint64_t delay_ms)
{
    if (offset < g->committed || offset >= g->next) {
        return -ENOENT;
    }
    struct tr_bk_slot *s = slot(g, offset);
    if (s->state == TR_BK_SLOT_ACKED) {
        return -ENOENT;
    }
    s->state = TR_BK_SLOT_READY;
    s->due_ms = now_ms + delay_ms;
    return 0;
}

void tr_bk_group_skip_to(struct tr_bk_group *g, uint64_t first)
{
    while (g->committed < first && g->committed < g->next) {
        struct tr_bk_slot *s = slot(g, g->committed);
        if (s->state != TR_BK_SLOT_ACKED) {
            g->unacked--;
        }
        s->state = TR_BK_SLOT_ACKED;
        g->committed++;
    }
    if (g->committed < first) {
        g->committed = first;
        g->next = first;
    }
}
