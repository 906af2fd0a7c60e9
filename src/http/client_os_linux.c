/* SPDX-License-Identifier: Apache-2.0 */
/* Linux socket facts the HTTP client's retry rule needs: how many bytes the peer has
 * acknowledged. Kept apart because <linux/tcp.h> clashes with <netinet/tcp.h>, which
 * <uv.h> pulls in. */
#include "http/client_os.h"

#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

int tr_http_client_os_bytes_acked(int fd, uint64_t *out)
{
    struct tcp_info info;
    memset(&info, 0, sizeof(info));
    socklen_t len = sizeof(info);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == -1) {
        return -errno;
    }
    /* Kernels before 4.1 return a shorter struct without the counter. */
    size_t need = offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof(info.tcpi_bytes_acked);
    if (len < need) {
        return -ENOTSUP;
    }
    *out = info.tcpi_bytes_acked;
    return 0;
}
