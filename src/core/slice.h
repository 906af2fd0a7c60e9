/* SPDX-License-Identifier: Apache-2.0 */
/* Slices: wire text as (pointer, length), passed by value and never assumed to be
 * NUL-terminated. A slice borrows; its owner says how long the bytes stay valid. */
#ifndef TR_CORE_SLICE_H
#define TR_CORE_SLICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

struct tr_slice {
    const char *ptr;
    size_t len;
};

#define TR_SLICE_LIT(s) ((struct tr_slice){(s), sizeof(s) - 1})
#define TR_SLICE_NULL ((struct tr_slice){NULL, 0})
/* printf helper: printf("%.*s", TR_SLICE_FMT(s)) */
#define TR_SLICE_FMT(s) (int)(s).len, (s).ptr

static inline struct tr_slice tr_slice(const char *p, size_t n)
{
    return (struct tr_slice){p, n};
}

static inline struct tr_slice tr_slice_cstr(const char *s)
{
    return (struct tr_slice){s, s ? strlen(s) : 0};
}

static inline bool tr_slice_eq(struct tr_slice a, struct tr_slice b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* ASCII case-insensitive comparison, as header names need (RFC 9110 §5.1). */
static inline bool tr_slice_caseeq(struct tr_slice a, struct tr_slice b)
{
    return a.len == b.len && (a.len == 0 || strncasecmp(a.ptr, b.ptr, a.len) == 0);
}

static inline bool tr_slice_starts_with(struct tr_slice s, struct tr_slice prefix)
{
    return s.len >= prefix.len && memcmp(s.ptr, prefix.ptr, prefix.len) == 0;
}

/* Remove leading and trailing spaces and horizontal tabs (optional whitespace). */
struct tr_slice tr_slice_trim(struct tr_slice s);

/* Parse a non-negative decimal integer that spans the whole slice. Returns 0, or
 * -EINVAL for empty/non-digit input and -ERANGE on overflow. */
int tr_slice_to_u64(struct tr_slice s, uint64_t *out);

/* Does comma-separated header value `list` contain `token` (case-insensitive)? */
bool tr_slice_list_has(struct tr_slice list, struct tr_slice token);

/* Percent-decodes `in` into `out` (at least in.len bytes); with plus_is_space, '+'
 * becomes ' ' (query strings). Malformed escapes are kept as they are. Returns the
 * decoded length. */
size_t tr_pct_decode(char *out, struct tr_slice in, bool plus_is_space);

#endif
