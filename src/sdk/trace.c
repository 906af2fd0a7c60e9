/* SPDX-License-Identifier: Apache-2.0 */
/* Trace context parsing and ids (see trace.h). Ids come from a xoshiro256** generator
 * per thread, seeded once from getrandom(2): cheap, and distinct across threads and
 * processes. */
#include "sdk/trace.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static const char hex_digits[] = "0123456789abcdef";

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1; /* upper case is invalid in traceparent */
}

/* Copies `n` lowercase hex digits into out (NUL-terminated); fails on other characters
 * or when they are all zero. */
static int take_hex(const char *p, size_t n, char *out)
{
    bool nonzero = false;
    for (size_t i = 0; i < n; i++) {
        int v = hex_value(p[i]);
        if (v < 0) {
            return -EINVAL;
        }
        nonzero |= v != 0;
        out[i] = p[i];
    }
    out[n] = '\0';
    return nonzero ? 0 : -EINVAL;
}

int tr_trace_parse(struct tr_slice value, struct tr_trace *out)
{
    struct tr_slice v = tr_slice_trim(value);
    if (v.ptr == NULL || v.len < TR_TRACEPARENT_LEN) {
        return -EINVAL;
    }
    const char *p = v.ptr;
    int hi = hex_value(p[0]);
    int lo = hex_value(p[1]);
    if (hi < 0 || lo < 0 || (hi == 15 && lo == 15)) {
        return -EINVAL;
    }
    bool v00 = hi == 0 && lo == 0;
    if (v00 ? v.len != TR_TRACEPARENT_LEN : (v.len > TR_TRACEPARENT_LEN && p[55] != '-')) {
        return -EINVAL;
    }
    if (p[2] != '-' || p[35] != '-' || p[52] != '-') {
        return -EINVAL;
    }
    struct tr_trace t;
    if (take_hex(p + 3, 32, t.trace_id) != 0 || take_hex(p + 36, 16, t.span_id) != 0) {
        return -EINVAL;
    }
    int f1 = hex_value(p[53]);
    int f2 = hex_value(p[54]);
    if (f1 < 0 || f2 < 0) {
        return -EINVAL;
    }
    t.flags = (uint8_t)(f1 << 4 | f2);
    *out = t;
    return 0;
}

/* ------------------------------------------------------------ random ids */

struct rng {
    uint64_t s[4];
    bool seeded;
};

static _Thread_local struct rng thread_rng;

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static void rng_seed(struct rng *r)
{
    size_t got = 0;
    while (got < sizeof(r->s)) {
        ssize_t n = getrandom((char *)r->s + got, sizeof(r->s) - got, 0);
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    if (got < sizeof(r->s)) {
        /* No entropy source: mix time, pid and the thread's address. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        r->s[0] ^= (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull;
        r->s[1] ^= (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 32);
        r->s[2] ^= (uint64_t)(uintptr_t)r;
        r->s[3] ^= 0x2545f4914f6cdd1dull;
    }
    if ((r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0) {
        r->s[0] = 1;
    }
    r->seeded = true;
}

uint64_t tr_sdk_random_u64(void)
{
    struct rng *r = &thread_rng;
    if (!r->seeded) {
        rng_seed(r);
    }
    uint64_t result = rotl(r->s[1] * 5, 7) * 9;
    uint64_t t = r->s[1] << 17;
    r->s[2] ^= r->s[0];
    r->s[3] ^= r->s[1];
    r->s[1] ^= r->s[2];
    r->s[0] ^= r->s[3];
    r->s[2] ^= t;
    r->s[3] = rotl(r->s[3], 45);
    return result;
}

void tr_sdk_random(void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        uint64_t v = tr_sdk_random_u64();
        size_t k = n < sizeof(v) ? n : sizeof(v);
        memcpy(p, &v, k);
        p += k;
        n -= k;
    }
}

/* Random lowercase hex, never all zero (the spec's invalid value). */
static void random_hex(char *out, size_t digits)
{
    bool nonzero = false;
    while (!nonzero) {
        unsigned char bytes[16];
        tr_sdk_random(bytes, digits / 2);
        for (size_t i = 0; i < digits / 2; i++) {
            out[2 * i] = hex_digits[bytes[i] >> 4];
            out[2 * i + 1] = hex_digits[bytes[i] & 15];
            nonzero |= bytes[i] != 0;
        }
    }
    out[digits] = '\0';
}

void tr_trace_new(struct tr_trace *t)
{
    random_hex(t->trace_id, 32);
    random_hex(t->span_id, 16);
    t->flags = 1;
}

void tr_trace_child(const struct tr_trace *parent, struct tr_trace *child)
{
    memcpy(child->trace_id, parent->trace_id, sizeof(child->trace_id));
    child->flags = parent->flags;
    random_hex(child->span_id, 16);
}

void tr_trace_format(const struct tr_trace *t, char out[TR_TRACEPARENT_LEN + 1])
{
    memcpy(out, "00-", 3);
    memcpy(out + 3, t->trace_id, 32);
    out[35] = '-';
    memcpy(out + 36, t->span_id, 16);
    out[52] = '-';
    out[53] = hex_digits[t->flags >> 4];
    out[54] = hex_digits[t->flags & 15];
    out[55] = '\0';
}

/* ------------------------------------------------------------ per-thread context */

static _Thread_local const struct tr_sdk_ctx *current_ctx;

const struct tr_sdk_ctx *tr_sdk_ctx_current(void)
{
    return current_ctx;
}

const struct tr_sdk_ctx *tr_sdk_ctx_swap(const struct tr_sdk_ctx *ctx)
{
    const struct tr_sdk_ctx *prev = current_ctx;
    current_ctx = ctx;
    return prev;
}
