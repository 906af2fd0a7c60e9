/* SPDX-License-Identifier: Apache-2.0 */
/* Binary min-heap with slot tracking (see heap.h). */
#include "core/heap.h"

#include "core/mem.h"

void tr_heap_init(struct tr_heap *h)
{
    h->nodes = NULL;
    h->len = 0;
    h->cap = 0;
}

void tr_heap_dispose(struct tr_heap *h)
{
    for (size_t i = 0; i < h->len; i++) {
        h->nodes[i]->slot = 0;
    }
    tr_free_null(&h->nodes);
    h->len = 0;
    h->cap = 0;
}

static void place(struct tr_heap *h, size_t i, struct tr_heap_node *n)
{
    h->nodes[i] = n;
    n->slot = i + 1;
}

static void sift_up(struct tr_heap *h, size_t i)
{
    struct tr_heap_node *n = h->nodes[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->nodes[parent]->key <= n->key) {
            break;
        }
        place(h, i, h->nodes[parent]);
        i = parent;
    }
    place(h, i, n);
}

static void sift_down(struct tr_heap *h, size_t i)
{
    struct tr_heap_node *n = h->nodes[i];
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= h->len) {
            break;
        }
        size_t c = l;
        if (l + 1 < h->len && h->nodes[l + 1]->key < h->nodes[l]->key) {
            c = l + 1;
        }
        if (h->nodes[c]->key >= n->key) {
            break;
        }
        place(h, i, h->nodes[c]);
        i = c;
    }
    place(h, i, n);
}

void tr_heap_push(struct tr_heap *h, struct tr_heap_node *n, uint64_t key)
{
    TR_ASSERT(n->slot == 0);
    if (h->len == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->nodes = tr_xrealloc(h->nodes, h->cap * sizeof(*h->nodes));
    }
    n->key = key;
    place(h, h->len++, n);
    sift_up(h, h->len - 1);
}

void tr_heap_remove(struct tr_heap *h, struct tr_heap_node *n)
{
    if (n->slot == 0) {
        return;
    }
    size_t i = n->slot - 1;
    n->slot = 0;
    h->len--;
    if (i == h->len) {
        return;
    }
    place(h, i, h->nodes[h->len]);
    sift_down(h, i);
    sift_up(h, i);
}

struct tr_heap_node *tr_heap_min(const struct tr_heap *h)
{
    return h->len ? h->nodes[0] : NULL;
}
