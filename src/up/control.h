/* SPDX-License-Identifier: Apache-2.0 */
/* The control API of a running `trellis up`: HTTP/1.1 with JSON bodies on 127.0.0.1 (a
 * port chosen at start and written, with the pid, to .trellis/control), served on
 * trellis up's own loop. `trellis ps`, `scale`, `rollout` and `down` are its clients.
 *
 *   GET  /v1/status                      the status document (trellis ps --json)
 *   POST /v1/services/{name}/scale       {"replicas": N}; answered when done
 *   POST /v1/services/{name}/rollout     answered when every replica is replaced
 *   POST /v1/down                        202, then the orderly stop begins
 *
 * Errors are {"error": {"code", "message"}} with the project's status table. */
#ifndef TR_UP_CONTROL_H
#define TR_UP_CONTROL_H

#include <jansson.h>

struct tr_up;
struct tr_http_req;

/* Listens on 127.0.0.1:0 and writes .trellis/control. Returns 0 or a negative errno. */
int tr_up__control_open(struct tr_up *up);

/* Stops listening, closes every connection and removes .trellis/control. */
void tr_up__control_close(struct tr_up *up);

/* Answers a request an operation kept waiting; steals `body`. */
void tr_up__control_reply(struct tr_http_req *req, int status, json_t *body);

#endif
