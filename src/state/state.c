/* SPDX-License-Identifier: Apache-2.0 */
/* Rules every state store shares: which names and keys are acceptable, and what an
 * ETag looks like (a decimal version number, so that "is this one of ours" is a
 * cheap, exact question). */
#include "state/state.h"

#include <errno.h>
#include <stdio.h>

const char *tr_state_name_problem(struct tr_slice name)
{
    if (name.len == 0) {
        return "is empty";
    }
    if (name.len > TR_STATE_MAX_NAME) {
        return "is longer than 128 bytes";
    }
    for (size_t i = 0; i < name.len; i++) {
        char ch = name.ptr[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
        if (!ok) {
            return "may only contain letters, digits, '.', '_' and '-'";
        }
    }
    return NULL;
}

const char *tr_state_key_problem(struct tr_slice key)
{
    if (key.len == 0) {
        return "key is empty";
    }
    if (key.len > TR_STATE_MAX_KEY) {
        return "key is longer than 1024 bytes";
    }
    for (size_t i = 0; i < key.len; i++) {
        unsigned char ch = (unsigned char)key.ptr[i];
        if (ch < 0x20 || ch == 0x7f) {
            return "key contains a control character";
        }
        if (ch == '|' && i + 1 < key.len && key.ptr[i + 1] == '|') {
            return "key contains '||', which is reserved";
        }
    }
    return NULL;
}

int tr_state_etag_parse(struct tr_slice etag, uint64_t *version)
{
    /* At most 20 digits, and no leading zero: one version has one spelling. */
    if (etag.len == 0 || etag.len > 20 || etag.ptr[0] == '0') {
        return -EINVAL;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < etag.len; i++) {
        char ch = etag.ptr[i];
        if (ch < '0' || ch > '9') {
            return -EINVAL;
        }
        uint64_t d = (uint64_t)(ch - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return -EINVAL;
        }
        v = v * 10 + d;
    }
    *version = v;
    return 0;
}

void tr_state_etag_format(uint64_t version, char *buf)
{
    snprintf(buf, TR_STATE_ETAG_LEN, "%llu", (unsigned long long)version);
}

bool tr_state_content_type_is_json(struct tr_slice ct)
{
    size_t n = 0;
    while (n < ct.len && ct.ptr[n] != ';') {
        n++;
    }
    struct tr_slice mt = tr_slice_trim(tr_slice(ct.ptr, n));
    if (tr_slice_caseeq(mt, TR_SLICE_LIT("application/json"))) {
        return true;
    }
    return mt.len > 5 && strncasecmp(mt.ptr + mt.len - 5, "+json", 5) == 0;
}
