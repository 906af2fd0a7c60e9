/* SPDX-License-Identifier: Apache-2.0 */
/* Growable byte buffers (see buf.h). */
#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

void tr_buf_init(struct tr_buf *buf)
{
    buf->base = NULL;
    buf->off = 0;
    buf->len = 0;
    buf->cap = 0;
}

void tr_buf_dispose(struct tr_buf *buf)
{
    tr_free_null(&buf->base);
    tr_buf_init(buf);
}

char *tr_buf__grow(struct tr_buf *buf, size_t n)
{
    if (buf->off + buf->len + n <= buf->cap) {
        return buf->base + buf->off + buf->len;
    }
    /* Slide live bytes down when that frees enough room and the move is small
     * relative to what it saves; otherwise grow. */
    if (buf->len + n <= buf->cap && buf->off > 0) {
        memmove(buf->base, buf->base + buf->off, buf->len);
        buf->off = 0;
        return buf->base + buf->len;
    }
    size_t cap = buf->cap ? buf->cap : 1024;
    while (cap < buf->len + n) {
        cap *= 2;
    }
    if (buf->off > 0) {
        char *p = tr_xmalloc(cap);
        memcpy(p, buf->base + buf->off, buf->len);
        free(buf->base);
        buf->base = p;
        buf->off = 0;
    } else {
        buf->base = tr_xrealloc(buf->base, cap);
    }
    buf->cap = cap;
    return buf->base + buf->len;
}

void tr_buf_commit(struct tr_buf *buf, size_t n)
{
    TR_ASSERT(buf->off + buf->len + n <= buf->cap);
    buf->len += n;
}

void tr_buf_vappendf(struct tr_buf *buf, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    char *p = tr_buf_reserve(buf, 128);
    size_t room = buf->cap - buf->off - buf->len;
    int n = vsnprintf(p, room, fmt, ap);
    if (n < 0) {
        va_end(ap2);
        return;
    }
    if ((size_t)n >= room) {
        p = tr_buf_reserve(buf, (size_t)n + 1);
        vsnprintf(p, (size_t)n + 1, fmt, ap2);
    }
    va_end(ap2);
    buf->len += (size_t)n;
}

void tr_buf_appendf(struct tr_buf *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tr_buf_vappendf(buf, fmt, ap);
    va_end(ap);
}

void tr_buf_append_u64(struct tr_buf *buf, unsigned long long v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    tr_buf_append(buf, tmp + i, sizeof(tmp) - i);
}

void tr_buf_consume(struct tr_buf *buf, size_t n)
{
    TR_ASSERT(n <= buf->len);
    buf->len -= n;
    buf->off = buf->len == 0 ? 0 : buf->off + n;
}

void tr_buf_reset(struct tr_buf *buf)
{
    buf->off = 0;
    buf->len = 0;
}

void tr_buf_shrink(struct tr_buf *buf, size_t keep)
{
    if (buf->len == 0 && buf->cap > keep) {
        tr_buf_dispose(buf);
    }
}
