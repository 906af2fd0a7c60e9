/* SPDX-License-Identifier: Apache-2.0 */
/* Direct socket writes (see sock.h). */
#include "http/sock.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>

ssize_t tr_http_sock_send(uv_stream_t *stream, const uv_buf_t *bufs, unsigned nbufs)
{
    uv_os_fd_t fd;
    int err = uv_fileno((const uv_handle_t *)stream, &fd);
    if (err != 0) {
        return err;
    }
    ssize_t n;
    if (nbufs == 1) {
        n = send(fd, bufs[0].base, bufs[0].len, MSG_DONTWAIT | MSG_NOSIGNAL);
    } else {
        /* uv_buf_t is laid out as struct iovec on Unix (libuv documents it). */
        struct msghdr msg = {.msg_iov = (struct iovec *)bufs, .msg_iovlen = nbufs};
        n = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    if (n >= 0) {
        return n;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        return 0;
    }
    return -errno;
}
