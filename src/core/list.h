/* SPDX-License-Identifier: Apache-2.0 */
/* Intrusive circular doubly-linked lists: embed a struct tr_list in the element and
 * get back to it with tr_container_of(). Insertion and removal are O(1). */
#ifndef TR_CORE_LIST_H
#define TR_CORE_LIST_H

#include <stdbool.h>

struct tr_list {
    struct tr_list *prev;
    struct tr_list *next;
};

static inline void tr_list_init(struct tr_list *l)
{
    l->prev = l;
    l->next = l;
}

static inline bool tr_list_empty(const struct tr_list *l)
{
    return l->next == l;
}

/* Is the element linked into some list? Elements must be initialised. */
static inline bool tr_list_linked(const struct tr_list *e)
{
    return e->next != e;
}

static inline void tr_list_insert_tail(struct tr_list *head, struct tr_list *e)
{
    e->prev = head->prev;
    e->next = head;
    head->prev->next = e;
    head->prev = e;
}

static inline void tr_list_remove(struct tr_list *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
    tr_list_init(e);
}

static inline struct tr_list *tr_list_first(const struct tr_list *head)
{
    return head->next == head ? (struct tr_list *)0 : head->next;
}

#define tr_list_foreach_safe(it, tmp, head)                                                        \
    for ((it) = (head)->next, (tmp) = (it)->next; (it) != (head); (it) = (tmp), (tmp) = (it)->next)

#endif
