/* SPDX-License-Identifier: Apache-2.0 */
/* JSON-lines logger (see log.h). The message is JSON-escaped; a line longer than the
 * stack buffer is truncated rather than split. */
#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

_Atomic int tr_log_level_current = TR_LOG_LEVEL_INFO;
static _Atomic int log_fd = 2;

static const char *const level_names[TR_LOG_LEVEL_COUNT] = {"error", "warn", "info", "debug"};

int tr_log_level_parse(const char *name, enum tr_log_level *out)
{
    for (int i = 0; i < TR_LOG_LEVEL_COUNT; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum tr_log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

void tr_log_set_level(enum tr_log_level level)
{
    atomic_store(&tr_log_level_current, (int)level);
}

void tr_log_set_fd(int fd)
{
    atomic_store(&log_fd, fd);
}

/* Appends `src` JSON-escaped to dst[*pos..cap-1], stopping when full. */
static void put_escaped(char *dst, size_t cap, size_t *pos, const char *src)
{
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *s = (const unsigned char *)src; *s != '\0'; s++) {
        if (*pos + 7 >= cap) {
            return;
        }
        unsigned char c = *s;
        if (c == '"' || c == '\\') {
            dst[(*pos)++] = '\\';
            dst[(*pos)++] = (char)c;
        } else if (c == '\n') {
            dst[(*pos)++] = '\\';
            dst[(*pos)++] = 'n';
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(dst + *pos, "\\u00", 4);
            dst[*pos + 4] = hex[c >> 4];
            dst[*pos + 5] = hex[c & 15];
            *pos += 6;
        } else {
            dst[(*pos)++] = (char)c;
        }
    }
}

static void put_raw(char *dst, size_t cap, size_t *pos, const char *fmt, ...)
{
    if (*pos >= cap) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst + *pos, cap - *pos, fmt, ap);
    va_end(ap);
    if (n > 0) {
        *pos += (size_t)n < cap - *pos ? (size_t)n : cap - *pos - 1;
    }
}

void tr_log_write(enum tr_log_level level, const char *area, const struct tr_log_ctx *ctx,
                  const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);

    char line[4096];
    size_t pos = 0;
    const size_t cap = sizeof(line) - 2; /* room for "}\n" */
    put_raw(line, cap, &pos,
            "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\",\"area\":\"",
            tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, level_names[level]);
    put_escaped(line, cap, &pos, area);
    put_raw(line, cap, &pos, "\",\"msg\":\"");
    put_escaped(line, cap, &pos, msg);
    put_raw(line, cap, &pos, "\"");
    if (ctx != NULL) {
        if (ctx->conn_id != 0) {
            put_raw(line, cap, &pos, ",\"conn\":%llu", (unsigned long long)ctx->conn_id);
        }
        if (ctx->req_id != 0) {
            put_raw(line, cap, &pos, ",\"req\":%llu", (unsigned long long)ctx->req_id);
        }
        if (ctx->peer != NULL) {
            put_raw(line, cap, &pos, ",\"peer\":\"");
            put_escaped(line, cap, &pos, ctx->peer);
            put_raw(line, cap, &pos, "\"");
        }
        if (ctx->action != NULL) {
            put_raw(line, cap, &pos, ",\"action\":\"");
            put_escaped(line, cap, &pos, ctx->action);
            put_raw(line, cap, &pos, "\"");
        }
    }
    line[pos++] = '}';
    line[pos++] = '\n';
    ssize_t w;
    do {
        w = write(atomic_load(&log_fd), line, pos);
    } while (w == -1 && errno == EINTR);
}
