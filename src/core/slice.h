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

/* Eight bytes each of two strings equal but for the case of ASCII letters? */
static inline bool tr_ascii_caseeq8(uint64_t x, uint64_t y)
{
    const uint64_t ones = 0x0101010101010101ull;
    uint64_t d = x ^ y;
    if (d == 0) {
        return true;
    }
    /* 0x80 in each byte of x that is a letter: lowered into 0..0x7f, no carries. */
    uint64_t low = (x | 0x20 * ones) & 0x7f * ones;
    uint64_t ge_a = low + (0x80 - 'a') * ones;
    uint64_t gt_z = low + (0x80 - 'z' - 1) * ones;
    uint64_t letter = ge_a & ~gt_z & ~x & 0x80 * ones;
    /* Only the case bit (0x20) of letters may differ. */
    return (d & ~(letter >> 2)) == 0;
}

/* ASCII case-insensitive comparison of n bytes, NULs included (strncasecmp stops at a
 * NUL and depends on the locale). Inline and eight bytes at a time: header names are
 * compared several times per proxied request. */
static inline bool tr_ascii_caseeq(const char *a, const char *b, size_t n)
{
    uint64_t x;
    uint64_t y;
    if (n >= 8) {
        for (size_t i = 0; i + 8 < n; i += 8) {
            memcpy(&x, a + i, 8);
            memcpy(&y, b + i, 8);
            if (!tr_ascii_caseeq8(x, y)) {
                return false;
            }
        }
        /* The last eight bytes, overlapping what was compared. */
        memcpy(&x, a + n - 8, 8);
        memcpy(&y, b + n - 8, 8);
        return tr_ascii_caseeq8(x, y);
    }
    if (n >= 4) {
        /* The first four bytes and the last four, overlapping. */
        uint32_t a0, a1, b0, b1;
        memcpy(&a0, a, 4);
        memcpy(&a1, a + n - 4, 4);
        memcpy(&b0, b, 4);
        memcpy(&b1, b + n - 4, 4);
        return tr_ascii_caseeq8((uint64_t)a1 << 32 | a0, (uint64_t)b1 << 32 | b0);
    }
    x = 0;
    y = 0;
    for (size_t i = 0; i < n; i++) {
        x = x << 8 | (unsigned char)a[i];
        y = y << 8 | (unsigned char)b[i];
    }
    return tr_ascii_caseeq8(x, y);
}

/* ASCII case-insensitive comparison, as header names need (RFC 9110 §5.1). */
static inline bool tr_slice_caseeq(struct tr_slice a, struct tr_slice b)
{
    return a.len == b.len && tr_ascii_caseeq(a.ptr, b.ptr, a.len);
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
