/* SPDX-License-Identifier: Apache-2.0 */
/* Result codes, the per-thread error detail and environment lookups for the SDK. */
#include "sdk/sdk.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "core/mem.h"
#include "core/slice.h"

static _Thread_local char last_error[512];

int tr_sdk_fail(int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof(last_error), fmt, ap);
    va_end(ap);
    return rc;
}

void tr_sdk_clear_error(void)
{
    last_error[0] = '\0';
}

const char *trellis_last_error(void)
{
    return last_error;
}

const char *trellis_strerror(int rc)
{
    switch (rc) {
    case TRELLIS_OK:
        return "ok";
    case TRELLIS_ENOTFOUND:
        return "state key not found";
    case TRELLIS_ECONFLICT:
        return "ETag conflict";
    case TRELLIS_EHTTP:
        return "unexpected status from the sidecar";
    case TRELLIS_EBADJSON:
        return "invalid JSON";
    default:
        return tr_strerror(rc);
    }
}

void trellis_free(void *p)
{
    tr_free_null(&p);
}

uint64_t tr_sdk_env_u64(const char *name, uint64_t def, uint64_t min, uint64_t max)
{
    const char *text = getenv(name);
    if (text == NULL || text[0] == '\0') {
        return def;
    }
    uint64_t v;
    if (tr_slice_to_u64(tr_slice_cstr(text), &v) != 0 || v < min || v > max) {
        trellis_log(TRELLIS_LOG_WARN, "ignoring %s=\"%s\": expected a number from %llu to %llu",
                    name, text, (unsigned long long)min, (unsigned long long)max);
        return def;
    }
    return v;
}
