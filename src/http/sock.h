/* SPDX-License-Identifier: Apache-2.0 */
/* Direct socket writes for the HTTP server and client: what uv_try_write() does, but
 * through send()/sendmsg(), which skip the VFS layer that write()/writev() go through
 * (about 200 kernel cycles less per call here), on the request path twice per proxied
 * request. */
#ifndef TR_HTTP_SOCK_H
#define TR_HTTP_SOCK_H

#include <sys/types.h>

#include <uv.h>

#include "core/mem.h"

/* Writes as much of `bufs` as the socket of `stream` takes now, without blocking and
 * without SIGPIPE. Only for a stream with no uv_write() queued (the bytes would jump
 * the queue). Returns the bytes written, 0 when the socket buffer is full (or a signal
 * interrupted), or a negative errno (UV_EPIPE, UV_ECONNRESET, ...). */
TR_MUST_CHECK ssize_t tr_http_sock_send(uv_stream_t *stream, const uv_buf_t *bufs, unsigned nbufs);

#endif
