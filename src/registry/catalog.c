/* SPDX-License-Identifier: Apache-2.0 */
/* Catalog placeholder: services and checks arrive with the agent/catalog/health API. */
#include "registry/catalog.h"

#include "core/mem.h"
#include "registry/registry.h"

struct tr_catalog {
    int unused;
};

struct tr_catalog *tr_catalog_new(struct tr_reg *reg)
{
    (void)reg;
    return tr_xcalloc(1, sizeof(struct tr_catalog));
}

void tr_catalog_restore(struct tr_reg *reg, const struct tr_reg_record *r)
{
    (void)reg;
    (void)r;
}

void tr_catalog_loaded(struct tr_reg *reg)
{
    (void)reg;
}

void tr_catalog_start(struct tr_reg *reg)
{
    (void)reg;
}

void tr_catalog_stop(struct tr_reg *reg)
{
    (void)reg;
}

void tr_catalog_free(struct tr_reg *reg)
{
    tr_free_null(&reg->catalog);
}
