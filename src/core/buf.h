/* SPDX-License-Identifier: Apache-2.0 */
/* Growable byte buffers. Readers take from the front (tr_buf_consume), writers append
 * at the back (tr_buf_reserve + tr_buf_commit). Space at the front is reclaimed by
 * sliding the live bytes down, never on every consume, so a pipelined stream of small
 * messages costs no memmove per message. */
#ifndef TR_CORE_BUF_H
#define TR_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include "core/slice.h"

struct tr_buf {
    char *base; /* owned; NULL until first reserve */
    size_t off; /* bytes consumed from the front */
    size_t len; /* live bytes, starting at base + off */
    size_t cap; /* bytes allocated at base */
};

void tr_buf_init(struct tr_buf *buf);
void tr_buf_dispose(struct tr_buf *buf);

/* tr_buf_reserve() when the room is not there yet: slides or grows the buffer. */
char *tr_buf__grow(struct tr_buf *buf, size_t n);

/* Returns a pointer where at least `n` more bytes can be written after the live
 * bytes; pointers into the buffer obtained earlier may be invalidated. Aborts on OOM.
 * Inline: appending to a buffer with room is on every request's path. */
static inline char *tr_buf_reserve(struct tr_buf *buf, size_t n)
{
    if (buf->off + buf->len + n <= buf->cap) {
        return buf->base + buf->off + buf->len;
    }
    return tr_buf__grow(buf, n);
}

/* Marks `n` bytes written at the pointer tr_buf_reserve() returned as live. */
void tr_buf_commit(struct tr_buf *buf, size_t n);

static inline void tr_buf_append(struct tr_buf *buf, const void *p, size_t n)
{
    if (n == 0) {
        return;
    }
    memcpy(tr_buf_reserve(buf, n), p, n);
    buf->len += n;
}

static inline void tr_buf_append_slice(struct tr_buf *buf, struct tr_slice s)
{
    tr_buf_append(buf, s.ptr, s.len);
}
void tr_buf_appendf(struct tr_buf *buf, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void tr_buf_vappendf(struct tr_buf *buf, const char *fmt, va_list ap);
/* Appends the decimal form of v. */
void tr_buf_append_u64(struct tr_buf *buf, unsigned long long v);
/* Drops `n` bytes from the front. */
void tr_buf_consume(struct tr_buf *buf, size_t n);
/* Drops all live bytes but keeps the allocation. */
void tr_buf_reset(struct tr_buf *buf);
/* Releases the allocation if it is larger than `keep` and empty. */
void tr_buf_shrink(struct tr_buf *buf, size_t keep);

/* The live bytes; NULL for a buffer that never allocated (no NULL + 0 arithmetic). */
static inline char *tr_buf_data(const struct tr_buf *buf)
{
    return buf->base == NULL ? NULL : buf->base + buf->off;
}

static inline struct tr_slice tr_buf_slice(const struct tr_buf *buf)
{
    return tr_slice(tr_buf_data(buf), buf->len);
}

#endif
