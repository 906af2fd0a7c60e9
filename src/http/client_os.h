/* SPDX-License-Identifier: Apache-2.0 */
/* Operating-system facts the HTTP client needs beyond what libuv offers; the Linux
 * implementation is client_os_linux.c. */
#ifndef TR_HTTP_CLIENT_OS_H
#define TR_HTTP_CLIENT_OS_H

#include <stdint.h>

#include "core/mem.h"

/* Bytes of output on TCP socket `fd` that the peer has acknowledged (tcpi_bytes_acked).
 * Returns 0, or a negative errno when the kernel cannot tell. */
TR_MUST_CHECK int tr_http_client_os_bytes_acked(int fd, uint64_t *out);

#endif
