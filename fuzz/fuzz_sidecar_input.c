/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for the sidecar's own input parsing (beyond the HTTP engine and the
 * component files, which have targets of their own). Byte 0 picks:
 *   0  traceparent: the rest is an incoming header value; the hop's value must always
 *      be a valid version-00 traceparent, and keep the trace id exactly when the input
 *      is a valid one;
 *   1  secrets file: byte 1 is the separator ('\0' = ":"), bit 0 of byte 2 multiValued,
 *      the rest the file's JSON; every answer must be a JSON object of strings, the
 *      bulk answer an object of such objects, and a failure must say why. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include "core/slice.h"
#include "sidecar/api_secrets.h"
#include "sidecar/sidecar.h"

static bool hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static void check_traceparent(const char *out)
{
    TR_ASSERT(strlen(out) == 55);
    TR_ASSERT(memcmp(out, "00-", 3) == 0 && out[35] == '-' && out[52] == '-');
    for (size_t i = 0; i < 55; i++) {
        TR_ASSERT(i == 2 || i == 35 || i == 52 || hex(out[i]));
    }
    TR_ASSERT(memcmp(out + 3, "00000000000000000000000000000000", 32) != 0);
    TR_ASSERT(memcmp(out + 36, "0000000000000000", 16) != 0);
}

static void fuzz_traceparent(const char *p, size_t n)
{
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    char out[56];
    tr_sidecar_traceparent_child(tr_slice(p, n), &rng, out);
    check_traceparent(out);
    bool valid = n == 55 && memcmp(p, "00-", 3) == 0;
    for (size_t i = 0; valid && i < 55; i++) {
        valid = i == 2 || i == 35 || i == 52 ? p[i] == '-' : hex(p[i]);
    }
    valid = valid && memcmp(p + 3, "00000000000000000000000000000000", 32) != 0 &&
            memcmp(p + 36, "0000000000000000", 16) != 0;
    if (valid) {
        TR_ASSERT(memcmp(out + 3, p + 3, 32) == 0 && memcmp(out + 53, p + 53, 2) == 0);
    }
}

static void check_values(json_t *o)
{
    TR_ASSERT(json_is_object(o));
    const char *k;
    json_t *v;
    json_object_foreach (o, k, v) {
        TR_ASSERT(json_is_string(v));
    }
}

static void fuzz_secrets(const char *p, size_t n)
{
    if (n < 2) {
        return;
    }
    char sep[2] = {p[0] != '\0' ? p[0] : ':', '\0'};
    bool multi = (p[1] & 1) != 0;
    struct tr_sidecar_secret_answers a;
    char why[256] = "";
    int rc = tr_sidecar_secrets_build(p + 2, n - 2, sep, multi, &a, why, sizeof(why));
    if (rc != 0) {
        TR_ASSERT(why[0] != '\0');
        return;
    }
    json_t *bulk = json_loads(a.bulk, 0, NULL);
    TR_ASSERT(json_is_object(bulk) && json_object_size(bulk) == a.by_name.len);
    const struct tr_map_slot *slot;
    for (size_t i = 0; tr_map_next(&a.by_name, &i, &slot);) {
        json_t *one = json_loads(slot->value, 0, NULL);
        check_values(one);
        check_values(json_object_get(bulk, slot->key));
        json_decref(one);
    }
    json_decref(bulk);
    tr_sidecar_secrets_dispose(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    const char *p = (const char *)data + 1;
    switch (data[0] % 2) {
    case 0:
        fuzz_traceparent(p, size - 1);
        break;
    default:
        fuzz_secrets(p, size - 1);
        break;
    }
    return 0;
}
