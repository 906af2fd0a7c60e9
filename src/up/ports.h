/* SPDX-License-Identifier: Apache-2.0 */
/* Ports for the processes trellis up starts. A port is found free by binding it, then
 * released for the child to bind; the set remembers what was handed out in this run so
 * that two replicas never get the same port even if the kernel offers it twice. */
#ifndef TR_UP_PORTS_H
#define TR_UP_PORTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mem.h"

struct tr_up_ports {
    uint16_t *used; /* owned; ports handed out and not released */
    size_t n;
    size_t cap;
};

void tr_up_ports_init(struct tr_up_ports *set);
void tr_up_ports_dispose(struct tr_up_ports *set);

/* Picks a free port on 127.0.0.1: with `from` 0 one the kernel chooses, otherwise the
 * first free one at or above `from`. Stores it in *out and remembers it. Returns 0, or
 * -EADDRINUSE when no port could be found. */
TR_MUST_CHECK int tr_up_ports_take(struct tr_up_ports *set, uint16_t from, uint16_t *out);

/* Claims a specific port (a fixed address from the manifest): fails with -EADDRINUSE if
 * it was handed out already or something listens on it. `host` is the IP to check. */
TR_MUST_CHECK int tr_up_ports_claim(struct tr_up_ports *set, const char *host, uint16_t port);

/* Forgets a port handed out earlier (its replica is gone). Unknown ports are ignored. */
void tr_up_ports_release(struct tr_up_ports *set, uint16_t port);

bool tr_up_ports_used(const struct tr_up_ports *set, uint16_t port);

#endif
