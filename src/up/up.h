/* SPDX-License-Identifier: Apache-2.0 */
/* `trellis up`: runs a whole application from one manifest on this machine — the
 * control-plane server, the gateway, and for every service replica a sidecar and the
 * service process — supervises it (restarts with backoff, live scaling, rolling
 * restarts) and serves a small control API that `trellis ps/scale/rollout/down` use.
 * State lives in <manifest dir>/.trellis/. */
#ifndef TR_UP_UP_H
#define TR_UP_UP_H

#include <stdbool.h>

#include "up/manifest.h"

#define TR_UP_STATE_DIR ".trellis"
#define TR_UP_CONTROL_FILE "control" /* {"pid": N, "addr": "127.0.0.1:PORT", ...} */
#define TR_UP_LOCK_FILE "up.lock"
#define TR_UP_LOG_DIR "logs"

struct tr_up_options {
    const char *exe;        /* the trellis binary to run children with (absolute) */
    bool sidecar_available; /* this binary has the `sidecar` command */
    int out_fd;             /* where logs and the status table go; -1 for none */
};

/* Runs the application described by `m` (owned by the caller, kept until return) until
 * `trellis down`, SIGTERM, SIGINT or SIGHUP, then stops everything in order: gateway,
 * services and sidecars, server. Returns the exit code: 0 after a clean stop, 1 when
 * the start failed (the reason is printed). */
int tr_up_run(const struct tr_up_manifest *m, const struct tr_up_options *opts);

/* Makes `<dir>/.trellis/<name>` into `out`. Returns 0 or -ENAMETOOLONG. */
int tr_up_state_path(const char *dir, const char *name, char *out, size_t size);

#endif
