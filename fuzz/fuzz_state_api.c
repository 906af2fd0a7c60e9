/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzzes the state API handlers (/v1/state) and the embedded store as the registry
 * thread runs them: each input is "<method byte><target>\n<body>". The first byte picks
 * GET, POST, PUT or DELETE. Handlers must answer every input with a status and never
 * crash or leak; state carries over between inputs, so sequences of saves, ETag checks,
 * deletes and transactions are explored too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "registry/registry.h"
#include "server/call.h"
#include "server/state_api.h"

static struct tr_reg *reg;
static struct tr_router router;
static unsigned inputs;

static void cleanup(void)
{
    tr_reg_settle(reg, false);
    tr_reg_close(reg);
    tr_free_null(&reg);
    tr_router_dispose(&router);
}

static void setup(void)
{
    tr_log_set_level(TR_LOG_LEVEL_ERROR);
    char dir[] = "/tmp/trellis-fuzz-state-XXXXXX";
    TR_ASSERT(mkdtemp(dir) != NULL);
    reg = tr_xcalloc(1, sizeof(*reg));
    char err[256];
    TR_ASSERT(tr_reg_open(reg, dir, err, sizeof(err)) == 0);
    tr_router_init(&router);
    TR_ASSERT(tr_state_api_routes(&router) == 0);
    atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (reg == NULL) {
        setup();
    }
    if (size < 2) {
        return 0;
    }
    static const char *const methods[] = {"GET", "POST", "PUT", "DELETE"};
    const char *method = methods[data[0] % 4];
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    const char *nl = memchr(p, '\n', n);
    struct tr_slice target = nl ? tr_slice(p, (size_t)(nl - p)) : tr_slice(p, n);
    struct tr_slice body = nl ? tr_slice(nl + 1, n - target.len - 1) : tr_slice("", 0);
    if (target.len == 0 || target.ptr[0] != '/') {
        return 0;
    }
    struct tr_buf out;
    tr_buf_init(&out);
    int status = tr_srv_call_sync(reg, &router, method, target, body, &out);
    TR_ASSERT(status >= 200 && status < 600);
    tr_buf_dispose(&out);
    /* Persistence is not what this target fuzzes: drop queued records regularly. */
    if (++inputs % 64 == 0) {
        tr_reg_settle(reg, false);
    }
    return 0;
}
