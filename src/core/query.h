/* SPDX-License-Identifier: Apache-2.0 */
/* Query strings ("a=1&b&c=x%20y"): one scanner for every place that reads them. Values
 * are percent-decoded ('+' = space) into an arena; "?flag" without '=' has an empty
 * value. */
#ifndef TR_CORE_QUERY_H
#define TR_CORE_QUERY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/arena.h"
#include "core/slice.h"

/* Collects the values of parameter `name`, in order: up to `max` decoded into `out`.
 * Returns how many occurrences there are (which may exceed max). */
size_t tr_query_all(struct tr_slice query, const char *name, struct tr_arena *a,
                    struct tr_slice *out, size_t max);

/* First value of `name`; false when absent. */
static inline bool tr_query_get(struct tr_slice query, const char *name, struct tr_arena *a,
                                struct tr_slice *value)
{
    return tr_query_all(query, name, a, value, 1) > 0;
}

#endif
