/* SPDX-License-Identifier: Apache-2.0 */
/* Slice helpers that are too large to inline. */
#include "core/slice.h"

#include <errno.h>

struct tr_slice tr_slice_trim(struct tr_slice s)
{
    while (s.len > 0 && (s.ptr[0] == ' ' || s.ptr[0] == '\t')) {
        s.ptr++;
        s.len--;
    }
    while (s.len > 0 && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t')) {
        s.len--;
    }
    return s;
}

int tr_slice_to_u64(struct tr_slice s, uint64_t *out)
{
    if (s.len == 0) {
        return -EINVAL;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (c < '0' || c > '9') {
            return -EINVAL;
        }
        uint64_t d = (uint64_t)(c - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return -ERANGE;
        }
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

bool tr_slice_list_has(struct tr_slice list, struct tr_slice token)
{
    size_t start = 0;
    for (size_t i = 0; i <= list.len; i++) {
        if (i == list.len || list.ptr[i] == ',') {
            struct tr_slice item = tr_slice_trim(tr_slice(list.ptr + start, i - start));
            if (tr_slice_caseeq(item, token)) {
                return true;
            }
            start = i + 1;
        }
    }
    return false;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

size_t tr_pct_decode(char *out, struct tr_slice in, bool plus_is_space)
{
    size_t n = 0;
    for (size_t i = 0; i < in.len; i++) {
        char c = in.ptr[i];
        if (c == '+' && plus_is_space) {
            c = ' ';
        } else if (c == '%' && i + 2 < in.len && hexval(in.ptr[i + 1]) >= 0 &&
                   hexval(in.ptr[i + 2]) >= 0) {
            c = (char)(hexval(in.ptr[i + 1]) * 16 + hexval(in.ptr[i + 2]));
            i += 2;
        }
        out[n++] = c;
    }
    return n;
}
