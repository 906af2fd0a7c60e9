/* SPDX-License-Identifier: Apache-2.0 */
/* Socket addresses as users write them ("127.0.0.1:8080", "[::1]:80", ":8080") and
 * listening sockets shared between worker threads with SO_REUSEPORT. */
#ifndef TR_CORE_ADDR_H
#define TR_CORE_ADDR_H

#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>

#include "core/mem.h"

struct tr_addr {
    struct sockaddr_storage ss;
    socklen_t len;
};

/* Parses "host:port" with a numeric IPv4/IPv6 host ("" or "*" = any IPv4, "localhost"
 * = 127.0.0.1). Returns 0 or -EINVAL. */
TR_MUST_CHECK int tr_addr_parse(const char *text, struct tr_addr *out);
/* Formats as "ip:port" ("[ip]:port" for IPv6) into buf (at least 64 bytes). */
void tr_addr_format(const struct sockaddr *sa, char *buf, size_t size);
int tr_addr_port(const struct tr_addr *a);

/* Binds and closes a plain socket (no SO_REUSEPORT) to find out whether `addr` is
 * free: another process holding it, even with SO_REUSEPORT, makes this fail with
 * -EADDRINUSE. With port 0 the kernel's free port is written back into addr. */
TR_MUST_CHECK int tr_listen_probe(struct tr_addr *addr);

/* Creates a non-blocking TCP socket bound to `addr` with SO_REUSEADDR and
 * SO_REUSEPORT, listening with `backlog`. Returns the fd or a negative errno. If the
 * port is 0 the kernel's choice is written back into addr, so the next call binds the
 * same port. */
TR_MUST_CHECK int tr_listen_socket(struct tr_addr *addr, int backlog);

#endif
