/* SPDX-License-Identifier: Apache-2.0 */
/* Query-string scanning (see query.h). */
#include "core/query.h"

#include <string.h>

size_t tr_query_all(struct tr_slice query, const char *name, struct tr_arena *a,
                    struct tr_slice *out, size_t max)
{
    size_t nlen = strlen(name);
    size_t start = 0;
    size_t count = 0;
    if (query.len == 0) {
        return 0;
    }
    for (size_t i = 0; i <= query.len; i++) {
        if (i < query.len && query.ptr[i] != '&') {
            continue;
        }
        struct tr_slice item = tr_slice(query.ptr + start, i - start);
        start = i + 1;
        const char *eq = item.len ? memchr(item.ptr, '=', item.len) : NULL;
        size_t klen = eq ? (size_t)(eq - item.ptr) : item.len;
        if (klen != nlen || (nlen > 0 && memcmp(item.ptr, name, nlen) != 0)) {
            continue;
        }
        if (count < max) {
            struct tr_slice raw = eq ? tr_slice(eq + 1, item.len - klen - 1) : tr_slice("", 0);
            char *dec = tr_arena_alloc(a, raw.len + 1);
            size_t n = tr_pct_decode(dec, raw, true);
            dec[n] = '\0';
            out[count] = tr_slice(dec, n);
        }
        count++;
    }
    return count;
}
