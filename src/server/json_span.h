/* SPDX-License-Identifier: Apache-2.0 */
/* Raw spans of JSON text: where a member's value or an array's elements start and end
 * in the original bytes. The state API stores values exactly as the client sent them
 * (Dapr returns them as-is), which a parse-and-dump round trip would not do: numbers
 * would be respelled (0.1 -> 0.10000000000000001) and big integers rejected. Callers
 * validate the document with jansson first; these functions still never read outside
 * (ptr, len) and fail on malformed input. */
#ifndef TR_SERVER_JSON_SPAN_H
#define TR_SERVER_JSON_SPAN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "core/slice.h"

#define TR_JSON_SPAN_MAX_DEPTH 2048 /* jansson's own nesting limit */

/* The value `text` holds (surrounding whitespace trimmed): -1 when `text` is not
 * exactly one well-formed-looking JSON value. */
ssize_t tr_json_span_value(struct tr_slice text, struct tr_slice *out);
/* In the object `obj`, the raw value of the member spelled exactly `name` (names with
 * escapes are compared as written). False when absent or when `obj` is not an object. */
bool tr_json_span_member(struct tr_slice obj, const char *name, struct tr_slice *out);
/* The elements of the array `arr`: fills up to `max` spans and returns how many there
 * are in all, or -1 when `arr` is not an array. */
ssize_t tr_json_span_items(struct tr_slice arr, struct tr_slice *out, size_t max);

#endif
