/* SPDX-License-Identifier: Apache-2.0 */
/* Free-port allocation for trellis up (see ports.h). */
#include "up/ports.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/addr.h"

#define KERNEL_TRIES 32

void tr_up_ports_init(struct tr_up_ports *set)
{
    memset(set, 0, sizeof(*set));
}

void tr_up_ports_dispose(struct tr_up_ports *set)
{
    tr_free_null(&set->used);
    set->n = 0;
    set->cap = 0;
}

bool tr_up_ports_used(const struct tr_up_ports *set, uint16_t port)
{
    for (size_t i = 0; i < set->n; i++) {
        if (set->used[i] == port) {
            return true;
        }
    }
    return false;
}

static void remember(struct tr_up_ports *set, uint16_t port)
{
    if (set->n == set->cap) {
        set->cap = set->cap ? set->cap * 2 : 32;
        set->used = tr_xrealloc(set->used, set->cap * sizeof(*set->used));
    }
    set->used[set->n++] = port;
}

/* Is host:port free to bind? Writes the kernel's choice back when port is 0. */
static int probe(const char *host, uint16_t *port)
{
    char text[80];
    snprintf(text, sizeof(text), "%s:%u", host, (unsigned)*port);
    struct tr_addr a;
    if (tr_addr_parse(text, &a) != 0) {
        return -EINVAL;
    }
    int rc = tr_listen_probe(&a);
    if (rc != 0) {
        return rc;
    }
    *port = (uint16_t)tr_addr_port(&a);
    return 0;
}

int tr_up_ports_take(struct tr_up_ports *set, uint16_t from, uint16_t *out)
{
    if (from == 0) {
        for (int i = 0; i < KERNEL_TRIES; i++) {
            uint16_t port = 0;
            if (probe("127.0.0.1", &port) == 0 && port != 0 && !tr_up_ports_used(set, port)) {
                remember(set, port);
                *out = port;
                return 0;
            }
        }
        return -EADDRINUSE;
    }
    for (uint32_t p = from; p <= 65535; p++) {
        uint16_t port = (uint16_t)p;
        if (tr_up_ports_used(set, port) || probe("127.0.0.1", &port) != 0) {
            continue;
        }
        remember(set, port);
        *out = port;
        return 0;
    }
    return -EADDRINUSE;
}

int tr_up_ports_claim(struct tr_up_ports *set, const char *host, uint16_t port)
{
    if (tr_up_ports_used(set, port)) {
        return -EADDRINUSE;
    }
    uint16_t p = port;
    int rc = probe(host, &p);
    if (rc != 0) {
        return rc;
    }
    remember(set, port);
    return 0;
}

void tr_up_ports_release(struct tr_up_ports *set, uint16_t port)
{
    for (size_t i = 0; i < set->n; i++) {
        if (set->used[i] == port) {
            set->used[i] = set->used[--set->n];
            return;
        }
    }
}
