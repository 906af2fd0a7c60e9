/* SPDX-License-Identifier: Apache-2.0 */
/* libtrellis basics shared by every public header: the export marker, result codes,
 * the per-thread error detail, memory release and logging. */
#ifndef TRELLIS_BASE_H
#define TRELLIS_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the library's exported symbols; everything else in libtrellis is hidden. */
#define TRELLIS_API __attribute__((visibility("default")))

/* The library's version, "MAJOR.MINOR.PATCH". */
TRELLIS_API const char *trellis_version(void);

/* Result codes. Functions that can fail return 0 on success or a negative code: one of
 * these, or a negative errno for transport failures (-ECONNREFUSED when the sidecar is
 * not listening, -ETIMEDOUT when a call's timeout passed, -ECANCELED during shutdown,
 * -EINVAL for bad arguments, -ENOMEM). */
enum {
    TRELLIS_OK = 0,
    TRELLIS_ENOTFOUND = -10001, /* state: the key does not exist (the sidecar answered 204) */
    TRELLIS_ECONFLICT = -10002, /* state: ETag mismatch or first-write conflict (409) */
    TRELLIS_EHTTP = -10003,     /* the sidecar answered an unexpected status; see
                                   trellis_last_error() for the status and its body */
    TRELLIS_EBADJSON = -10004,  /* a body that should be JSON is not */
};

/* Names a result code: "state key not found", "connection refused". Never NULL. */
TRELLIS_API const char *trellis_strerror(int rc);

/* A sentence about the last failure of a libtrellis call on this thread (status code,
 * the sidecar's error body, the JSON error position), or "" if there is none. Valid
 * until the next libtrellis call on this thread. */
TRELLIS_API const char *trellis_last_error(void);

/* Frees memory libtrellis handed to the caller (strings from trellis_json_dump(),
 * ETags from trellis_state_get()). NULL is fine. */
TRELLIS_API void trellis_free(void *p);

enum trellis_log_level {
    TRELLIS_LOG_ERROR = 0,
    TRELLIS_LOG_WARN,
    TRELLIS_LOG_INFO,
    TRELLIS_LOG_DEBUG,
};

/* Writes one JSON log line to stderr: time, level, area (the app's name), msg, and the
 * trace id of the request being handled when called from a handler. Lines above the
 * level set by TRELLIS_LOG_LEVEL (error|warn|info|debug, default info) are skipped. Any
 * thread. */
TRELLIS_API void trellis_log(enum trellis_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif

#endif
