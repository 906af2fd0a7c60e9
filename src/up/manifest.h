/* SPDX-License-Identifier: Apache-2.0 */
/* The `trellis up` manifest (trellis.yaml): the server, the gateway, the components
 * directory and the services with their commands, replica counts, health paths and
 * environments, parsed and validated into an immutable struct. Every mistake is reported
 * as one line naming the file, the line and column, and the key path:
 * `trellis.yaml:7:15: services.order.replicas: expected an integer between 0 and 64, got "two"`.
 * Parsing is a pure function of the bytes (no file system access) so that it can be
 * fuzzed; tr_up_manifest_check_files() does the file system checks separately. */
#ifndef TR_UP_MANIFEST_H
#define TR_UP_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/mem.h"

#define TR_UP_MAX_SERVICES 64
#define TR_UP_MAX_REPLICAS 64 /* per service */
#define TR_UP_MAX_ENV 256     /* variables of one service */
#define TR_UP_MAX_NAME 63     /* service name length */
#define TR_UP_MAX_TIMEOUT_MS (10u * 60 * 1000)

#define TR_UP_DEFAULT_SERVER_LISTEN "127.0.0.1:8500"
#define TR_UP_DEFAULT_GATEWAY_LISTEN "127.0.0.1:8080"
#define TR_UP_DEFAULT_STOP_TIMEOUT_MS 5000
#define TR_UP_DEFAULT_STARTUP_TIMEOUT_MS 30000
#define TR_UP_DEFAULT_DRAIN_GRACE_MS 300

/* Where a key was written, for messages produced after parsing ("command not found"). */
struct tr_up_pos {
    uint32_t line;
    uint32_t col;
};

struct tr_up_service_def {
    const char *name;        /* [A-Za-z0-9][A-Za-z0-9_-]*, at most TR_UP_MAX_NAME bytes */
    const char *const *argv; /* NULL-terminated; argv[0] made absolute against the manifest
                                directory when it contains a '/' */
    size_t argc;             /* >= 1 */
    unsigned replicas;       /* 0 .. TR_UP_MAX_REPLICAS; default 1 */
    const char *health;      /* HTTP path ("/healthz"), or NULL: a TCP connect check */
    const char *const *env;  /* "NAME=value", NULL-terminated, in manifest order */
    size_t nenv;
    uint16_t port;            /* replicas take the first free ports from here up; 0 = any */
    bool sidecar;             /* start `trellis sidecar` next to each replica */
    uint64_t stop_timeout_ms; /* SIGTERM to SIGKILL */
    struct tr_up_pos pos;     /* of the service's key */
    struct tr_up_pos command_pos;
};

/* A parsed manifest. Everything belongs to it and is freed by tr_up_manifest_free(). */
struct tr_up_manifest {
    struct tr_arena arena;
    struct tr_conf *conf; /* owned: the gateway section is emitted from this tree */
    const char *file;     /* the name given to the parser, for messages */
    const char *dir;      /* directory relative paths are resolved against */
    const char *name;     /* name:, default the directory's base name */
    /* server: */
    const char *server_listen; /* host:port; port 0 = pick a free port */
    const char *data_dir;      /* absolute (or relative to the cwd if dir is) */
    unsigned server_workers;
    /* gateway: the proxy configuration, NULL when there is none */
    const struct tr_conf_node *gateway;
    const char *gateway_listen; /* host:port; port 0 = pick */
    const char *gateway_admin;  /* host:port, or NULL: pick a free port */
    unsigned gateway_workers;
    const char *components; /* resolved directory, or NULL */
    bool sidecar;           /* default for services */
    uint64_t stop_timeout_ms;
    uint64_t startup_timeout_ms; /* longest wait for all-healthy, per replica start */
    uint64_t drain_grace_ms;     /* after the gateway dropped a replica, before SIGTERM */
    struct tr_up_service_def *services;
    size_t nservices;
};

/* Parses manifest YAML `data` (`len` bytes). `file` names it in messages; relative paths
 * (commands, components, data_dir) are resolved against `dir`. No file is read and
 * nothing outside the returned struct is touched. On success stores a new manifest in
 * *out (free it with tr_up_manifest_free()) and returns 0; otherwise writes
 * "file:line:col: key.path: problem" into err and returns -EINVAL (or -EFBIG/-ENOMEM
 * from the YAML loader). */
TR_MUST_CHECK int tr_up_manifest_parse(const char *file, const char *dir, const char *data,
                                       size_t len, struct tr_up_manifest **out,
                                       struct tr_conf_err *err);

/* Reads and parses the file at `path`; `dir` is the file's directory made absolute.
 * Errors as above, plus the open/read errors (-ENOENT...). */
TR_MUST_CHECK int tr_up_manifest_load(const char *path, struct tr_up_manifest **out,
                                      struct tr_conf_err *err);

/* The checks that need the file system: every command whose argv[0] is a path exists
 * and is executable, and the components directory exists. Reports the first problem
 * at the key's position and returns -ENOENT/-EACCES/-ENOTDIR, or 0. */
TR_MUST_CHECK int tr_up_manifest_check_files(const struct tr_up_manifest *m,
                                             struct tr_conf_err *err);

/* The service called `name`, or NULL. */
const struct tr_up_service_def *tr_up_manifest_service(const struct tr_up_manifest *m,
                                                       const char *name);

void tr_up_manifest_free(struct tr_up_manifest *m);

#endif
