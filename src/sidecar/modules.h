/* SPDX-License-Identifier: Apache-2.0 */
/* The sidecar's modules (see struct tr_sidecar_module), one per building block; the
 * table that orders them is in modules.c. */
#ifndef TR_SIDECAR_MODULES_H
#define TR_SIDECAR_MODULES_H

#include "sidecar/sidecar.h"

extern const struct tr_sidecar_module tr_sidecar_mod_meta;         /* api_meta.c */
extern const struct tr_sidecar_module tr_sidecar_mod_app;          /* app_health.c */
extern const struct tr_sidecar_module tr_sidecar_mod_registration; /* registration.c */
extern const struct tr_sidecar_module tr_sidecar_mod_state;        /* api_state.c */
extern const struct tr_sidecar_module tr_sidecar_mod_secrets;      /* api_secrets.c */
extern const struct tr_sidecar_module tr_sidecar_mod_invoke;       /* api_invoke.c */
extern const struct tr_sidecar_module tr_sidecar_mod_pubsub;       /* pubsub.c */

#endif
