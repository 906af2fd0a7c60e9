/* SPDX-License-Identifier: Apache-2.0 */
/* Secret stores (see api_secrets.c). The local file store's answers are built once
 * from the file's JSON text; exposed for the fuzzer and unit tests. */
#ifndef TR_SIDECAR_API_SECRETS_H
#define TR_SIDECAR_API_SECRETS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/map.h"
#include "core/mem.h"

#define TR_SIDECAR_SECRETS_MAX_DEPTH 32
#define TR_SIDECAR_SECRETS_MAX_KEY 1024

/* Every answer of one file store, serialised: GET .../<name> and GET .../bulk. */
struct tr_sidecar_secret_answers {
    struct tr_map by_name; /* secret name -> owned char * (JSON object text) */
    char *bulk;            /* owned: the bulk answer (JSON object text) */
};

/* Builds the answers from a secrets file's text: a JSON object whose nested objects
 * and arrays are flattened with `sep` ("db" {"user": "u"} -> secret "db:user"); with
 * `multi`, top-level keys are the secrets and their flattened contents the values.
 * Returns 0, or -EINVAL with `why` saying where the JSON is wrong (never quoting it:
 * secret values must not reach a log), or -ELOOP / -ENAMETOOLONG for nesting deeper
 * than TR_SIDECAR_SECRETS_MAX_DEPTH or a key path longer than
 * TR_SIDECAR_SECRETS_MAX_KEY. On failure `out` holds nothing to free. */
TR_MUST_CHECK int tr_sidecar_secrets_build(const char *json, size_t len, const char *sep,
                                           bool multi, struct tr_sidecar_secret_answers *out,
                                           char *why, size_t whylen);

void tr_sidecar_secrets_dispose(struct tr_sidecar_secret_answers *a);

#endif
