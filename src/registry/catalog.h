/* SPDX-License-Identifier: Apache-2.0 */
/* The catalog: services and checks registered through the agent API, their health,
 * and the health checker that runs HTTP/TCP/TTL checks on the registry loop. */
#ifndef TR_REGISTRY_CATALOG_H
#define TR_REGISTRY_CATALOG_H

#include "registry/persist.h"

struct tr_reg;
struct tr_catalog;

struct tr_catalog *tr_catalog_new(struct tr_reg *reg);
/* Main thread at startup: replays one persisted catalog object. */
void tr_catalog_restore(struct tr_reg *reg, const struct tr_reg_record *r);
/* Main thread: all records replayed. */
void tr_catalog_loaded(struct tr_reg *reg);
/* Registry thread: start health checking. */
void tr_catalog_start(struct tr_reg *reg);
/* Registry thread: stop checks and close every handle the catalog owns. */
void tr_catalog_stop(struct tr_reg *reg);
/* Main thread, after the registry loop has ended. */
void tr_catalog_free(struct tr_reg *reg);

#endif
