/* SPDX-License-Identifier: Apache-2.0 */
/* The client side of the CLI's thin subcommands (kv, services, register): finds the
 * server (--addr, TRELLIS_ADDR, CONSUL_HTTP_ADDR, 127.0.0.1:8500), makes blocking calls
 * to its HTTP API through the project's HTTP client on a private libuv loop, and turns
 * what goes wrong into one clear line on stderr. */
#ifndef TR_CLI_API_H
#define TR_CLI_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/addr.h"
#include "core/buf.h"
#include "core/mem.h"
#include "core/slice.h"

#define TR_CLI_DEFAULT_ADDR "127.0.0.1:8500"
/* Largest response body the CLI accepts; KV values are capped far below this. */
#define TR_CLI_MAX_RESPONSE_BYTES (64u * 1024 * 1024)

struct tr_http_client;

struct tr_cli_api {
    const char *cmd;   /* "kv put": prefixes every message */
    char display[300]; /* the server as the user named it, without "http://" */
    struct tr_addr addr;
    uv_loop_t loop;
    struct tr_http_client *client; /* owned; NULL until the first call */
    /* Optional, set after tr_cli_api_open(): */
    const char *peer_name;         /* names the peer in messages; NULL: "trellis server" */
    uint64_t response_timeout_ms;  /* longest wait for a response; 0: 60 s */
};

struct tr_cli_resp {
    int status;
    struct tr_buf body; /* owned; tr_cli_resp_dispose() frees it */
};

/* Picks the server address: `addr_opt` (the --addr value, may be NULL), else
 * $TRELLIS_ADDR, else $CONSUL_HTTP_ADDR, else 127.0.0.1:8500. Accepts "host:port",
 * "[v6]:port", "http://host:port" (a trailing "/" is fine); a host name is resolved
 * here. Returns 0, or prints why (naming where the address came from) and returns 2
 * for a malformed address, 1 for one that does not resolve. */
TR_MUST_CHECK int tr_cli_api_open(struct tr_cli_api *api, const char *cmd, const char *addr_opt);

/* Closes the connection and the private loop. */
void tr_cli_api_close(struct tr_cli_api *api);

/* Sends `method target` with `body` (TR_SLICE_NULL for none) and waits for the whole
 * response, which is stored in `resp` (initialised here; dispose it even on failure).
 * Returns 0 when a response arrived, whatever its status; otherwise prints
 * "trellis <cmd>: cannot reach trellis server at <addr>: <reason>" (or what failed
 * part way) and returns a negative errno. */
TR_MUST_CHECK int tr_cli_api_call(struct tr_cli_api *api, const char *method, const char *target,
                                  struct tr_slice body, struct tr_cli_resp *resp);

void tr_cli_resp_dispose(struct tr_cli_resp *resp);

/* Prints "trellis <cmd>: <what>: server answered <status>: <message>", taking the
 * message from a JSON error body ({"error":{"message"}}) or the body's text. */
void tr_cli_api_print_status(const struct tr_cli_api *api, const char *what,
                             const struct tr_cli_resp *resp);

/* Parses the body as JSON. NULL (after printing why) if it is not JSON. */
json_t *tr_cli_resp_json(const struct tr_cli_api *api, const struct tr_cli_resp *resp);

/* Appends `s` percent-encoded for a URL path (RFC 3986 §3.3): unreserved characters
 * stay, and '/' stays too when `keep_slash`. */
void tr_cli_url_escape(struct tr_buf *out, struct tr_slice s, bool keep_slash);

/* tr_buf_init() plus a first allocation, so that tr_buf_data() and tr_buf_slice() are
 * valid pointers even while the buffer is empty (no NULL + 0 arithmetic). */
void tr_cli_buf_init(struct tr_buf *buf);

/* Prints `v` as indented JSON on stdout followed by a newline. */
void tr_cli_print_json(const json_t *v);

#endif
