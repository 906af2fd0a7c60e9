/* SPDX-License-Identifier: Apache-2.0 */
/* trellis_log: the app's JSON log lines, with the trace id of the request being handled
 * on this thread. One write(2) per line, so threads never interleave. */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "sdk/sdk.h"
#include "sdk/trace.h"

static char log_area[64] = "app";
static _Atomic bool area_set;
static _Atomic int sdk_level = -1;

void tr_sdk_set_log_area(const char *area)
{
    bool expected = false;
    if (area != NULL && atomic_compare_exchange_strong(&area_set, &expected, true)) {
        snprintf(log_area, sizeof(log_area), "%s", area);
    }
}

const char *tr_sdk_log_area(void)
{
    return log_area;
}

static int current_level(void)
{
    int level = atomic_load(&sdk_level);
    if (level >= 0) {
        return level;
    }
    enum tr_log_level parsed = TR_LOG_LEVEL_INFO;
    const char *env = getenv("TRELLIS_LOG_LEVEL");
    if (env != NULL && tr_log_level_parse(env, &parsed) != 0) {
        parsed = TR_LOG_LEVEL_INFO;
    }
    atomic_store(&sdk_level, (int)parsed);
    /* The engine's own lines (http, client) follow the same setting. */
    tr_log_set_level(parsed);
    return (int)parsed;
}

void trellis_log(enum trellis_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    if ((int)level < 0 || (int)level > current_level() || level > TRELLIS_LOG_DEBUG) {
        return;
    }
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[96];
    snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    json_t *line = json_pack("{s:s, s:s, s:s, s:s?}", "time", when, "level", names[level], "area",
                             log_area, "msg", msg);
    if (line == NULL) {
        /* The message was not UTF-8: log it lossily rather than lose it. */
        line = json_pack("{s:s, s:s, s:s, s:s}", "time", when, "level", names[level], "area",
                         log_area, "msg", "(log message is not valid UTF-8)");
        if (line == NULL) {
            return;
        }
    }
    const struct tr_sdk_ctx *ctx = tr_sdk_ctx_current();
    if (ctx != NULL && ctx->trace != NULL) {
        json_object_set_new(line, "trace_id", json_string(ctx->trace->trace_id));
        json_object_set_new(line, "span_id", json_string(ctx->trace->span_id));
    }
    char *text = json_dumps(line, JSON_COMPACT);
    json_decref(line);
    if (text == NULL) {
        return;
    }
    struct tr_buf out;
    tr_buf_init(&out);
    tr_buf_append(&out, text, strlen(text));
    tr_buf_append(&out, "\n", 1);
    ssize_t w;
    do {
        w = write(2, tr_buf_data(&out), out.len);
    } while (w == -1 && errno == EINTR);
    tr_buf_dispose(&out);
    free(text);
}
