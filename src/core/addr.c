/* SPDX-License-Identifier: Apache-2.0 */
/* Address parsing and shared listening sockets (see addr.h). */
#include "core/addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int tr_addr_parse(const char *text, struct tr_addr *out)
{
    memset(out, 0, sizeof(*out));
    const char *colon = strrchr(text, ':');
    if (colon == NULL) {
        return -EINVAL;
    }
    char host[64];
    size_t hlen = (size_t)(colon - text);
    const char *h = text;
    if (hlen >= 2 && text[0] == '[' && text[hlen - 1] == ']') {
        h = text + 1;
        hlen -= 2;
    }
    if (hlen >= sizeof(host)) {
        return -EINVAL;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    char *end = NULL;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || errno != 0 || port < 0 || port > 65535) {
        return -EINVAL;
    }
    if (hlen == 0 || strcmp(host, "*") == 0) {
        snprintf(host, sizeof(host), "0.0.0.0");
    } else if (strcmp(host, "localhost") == 0) {
        snprintf(host, sizeof(host), "127.0.0.1");
    }
    struct sockaddr_in *v4 = (struct sockaddr_in *)&out->ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&out->ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        out->len = sizeof(*v4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        out->len = sizeof(*v6);
        return 0;
    }
    return -EINVAL;
}

void tr_addr_format(const struct sockaddr *sa, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &v4->sin_addr, ip, sizeof(ip));
        snprintf(buf, size, "%s:%u", ip, ntohs(v4->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &v6->sin6_addr, ip, sizeof(ip));
        snprintf(buf, size, "[%s]:%u", ip, ntohs(v6->sin6_port));
    } else {
        snprintf(buf, size, "?");
    }
}

int tr_addr_port(const struct tr_addr *a)
{
    if (a->ss.ss_family == AF_INET) {
        return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    }
    return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

int tr_listen_probe(struct tr_addr *addr)
{
    int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        return -errno;
    }
    int one = 1;
    int err = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        bind(fd, (struct sockaddr *)&addr->ss, addr->len) == -1) {
        err = -errno;
    } else {
        socklen_t len = sizeof(addr->ss);
        if (getsockname(fd, (struct sockaddr *)&addr->ss, &len) == 0) {
            addr->len = len;
        }
    }
    close(fd);
    return err;
}

int tr_listen_socket(struct tr_addr *addr, int backlog)
{
    int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        return -errno;
    }
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1) {
        goto fail;
    }
    if (bind(fd, (struct sockaddr *)&addr->ss, addr->len) == -1) {
        goto fail;
    }
    if (listen(fd, backlog) == -1) {
        goto fail;
    }
    socklen_t len = sizeof(addr->ss);
    if (getsockname(fd, (struct sockaddr *)&addr->ss, &len) == -1) {
        goto fail;
    }
    addr->len = len;
    return fd;
fail:;
    int err = -errno;
    close(fd);
    return err;
}
