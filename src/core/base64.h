/* SPDX-License-Identifier: Apache-2.0 */
/* Base64 (RFC 4648, standard alphabet, with padding). */
#ifndef TR_CORE_BASE64_H
#define TR_CORE_BASE64_H

#include <stddef.h>

#include "core/buf.h"
#include "core/mem.h"

void tr_base64_encode(struct tr_buf *out, const void *p, size_t n);
/* Decodes into out; returns 0 or -EINVAL for malformed input (bad characters, bad
 * padding, wrong length). */
TR_MUST_CHECK int tr_base64_decode(struct tr_buf *out, struct tr_slice in);

#endif
