/* SPDX-License-Identifier: Apache-2.0 */
/* The manifest's gateway: section becomes the gateway.yaml that `trellis proxy --config`
 * reads. The section is re-emitted from the parsed tree (one value per line, so every
 * line of the output maps back to a place in the manifest), with the addresses trellis up
 * decides filled in, and checked with the proxy's own parser so that a mistake in it is
 * reported against the manifest, not against a generated file. */
#ifndef TR_UP_GATEWAY_H
#define TR_UP_GATEWAY_H

#include "core/buf.h"
#include "core/config.h"
#include "core/mem.h"

struct tr_up_manifest;

/* Writes the gateway section of `m` (which must have one) as YAML into `out`: `listen`,
 * `admin` (host:port) and `registry` (an http:// URL) replace whatever the section says,
 * and keys that belong to trellis up (`workers`) are left out. The result is parsed with
 * the proxy's configuration parser; a complaint is reported at the corresponding line and
 * column of the manifest: "trellis.yaml:12:9: gateway: route refers to unknown cluster
 * \"x\"". Returns 0, or -EINVAL with err written (out then holds the rejected text). */
TR_MUST_CHECK int tr_up_gateway_yaml(const struct tr_up_manifest *m, const char *listen,
                                     const char *admin, const char *registry, struct tr_buf *out,
                                     struct tr_conf_err *err);

#endif
