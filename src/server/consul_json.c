/* SPDX-License-Identifier: Apache-2.0 */
/* JSON helpers shared by the Consul API handlers. */
#include "server/consul.h"

#include "core/base64.h"

json_t *tr_consul_base64(const char *p, size_t n)
{
    struct tr_buf b;
    tr_buf_init(&b);
    tr_base64_encode(&b, p, n);
    json_t *s = json_stringn(tr_buf_data(&b), b.len);
    tr_buf_dispose(&b);
    return s;
}
