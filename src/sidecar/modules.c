/* SPDX-License-Identifier: Apache-2.0 */
/* The module table: init order, and the order every hook runs in. Routes are matched
 * in the order modules add them; the catch-all (dapr-app-id header form, 404) comes
 * after all of them. */
#include "sidecar/modules.h"

#include <stddef.h>

const struct tr_sidecar_module *const tr_sidecar_modules[] = {
    &tr_sidecar_mod_meta,
    &tr_sidecar_mod_app,
    &tr_sidecar_mod_registration,
    &tr_sidecar_mod_state,
    &tr_sidecar_mod_secrets,
    &tr_sidecar_mod_pubsub,
    &tr_sidecar_mod_invoke,
    NULL,
};
