/* SPDX-License-Identifier: Apache-2.0 */
/* JSON-lines logging. Each line is one JSON object written with a single write(2) so
 * lines from several worker threads never interleave: time, level, area, msg, and the
 * context the caller passes (connection id, request id, peer, what we were doing).
 * The level check happens before any argument is evaluated. */
#ifndef TR_CORE_LOG_H
#define TR_CORE_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum tr_log_level {
    TR_LOG_LEVEL_ERROR = 0,
    TR_LOG_LEVEL_WARN,
    TR_LOG_LEVEL_INFO,
    TR_LOG_LEVEL_DEBUG,
    TR_LOG_LEVEL_COUNT
};

/* Context carried into a log line; any field may be zero/NULL and is then omitted. */
struct tr_log_ctx {
    uint64_t conn_id;
    uint64_t req_id;
    const char *peer;   /* "ip:port" */
    const char *action; /* "while reading request headers" */
};

extern _Atomic int tr_log_level_current;

/* Parses "error", "warn", "info", "debug"; returns -EINVAL for anything else. */
int tr_log_level_parse(const char *name, enum tr_log_level *out);
void tr_log_set_level(enum tr_log_level level);
/* Redirects log lines to `fd` (default 2). */
void tr_log_set_fd(int fd);

void tr_log_write(enum tr_log_level level, const char *area, const struct tr_log_ctx *ctx,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define TR_LOG_AT(lvl, area, ctx, ...)                                                             \
    do {                                                                                           \
        if ((int)(lvl) <= atomic_load_explicit(&tr_log_level_current, memory_order_relaxed)) {     \
            tr_log_write((lvl), (area), (ctx), __VA_ARGS__);                                       \
        }                                                                                          \
    } while (0)

#define TR_LOG_ERROR(area, ctx, ...) TR_LOG_AT(TR_LOG_LEVEL_ERROR, area, ctx, __VA_ARGS__)
#define TR_LOG_WARN(area, ctx, ...) TR_LOG_AT(TR_LOG_LEVEL_WARN, area, ctx, __VA_ARGS__)
#define TR_LOG_INFO(area, ctx, ...) TR_LOG_AT(TR_LOG_LEVEL_INFO, area, ctx, __VA_ARGS__)
#define TR_LOG_DEBUG(area, ctx, ...) TR_LOG_AT(TR_LOG_LEVEL_DEBUG, area, ctx, __VA_ARGS__)

#endif
