/* SPDX-License-Identifier: Apache-2.0 */
/* Private helpers shared by the SDK's files: the per-thread error detail behind
 * trellis_last_error() and environment lookups. */
#ifndef TR_SDK_SDK_H
#define TR_SDK_SDK_H

#include <stdbool.h>
#include <stdint.h>

#include "trellis/base.h"

/* Sets this thread's trellis_last_error() text (printf format). Returns `rc` so that
 * callers can write `return tr_sdk_fail(rc, "...")`. */
int tr_sdk_fail(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Clears this thread's error detail (each public call starts with it). */
void tr_sdk_clear_error(void);

/* $name parsed as an unsigned decimal in [min, max]; `def` when unset or invalid (an
 * invalid value is logged once per call). */
uint64_t tr_sdk_env_u64(const char *name, uint64_t def, uint64_t min, uint64_t max);

/* The log area for SDK and app log lines (the first app's name). */
void tr_sdk_set_log_area(const char *area);
const char *tr_sdk_log_area(void);

#endif
