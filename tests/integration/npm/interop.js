// SPDX-License-Identifier: Apache-2.0
// Drives trellis server with the npm `consul` client (tests/integration/test_consul_npm.py
// runs it and checks what it prints). Environment: TRELLIS_PORT, GOOD_PORT and BAD_PORT
// (two local HTTP servers whose /health answer 200 and 500). Prints one JSON object on
// stdout; any exception exits 1 with the error and the request it came from on stderr.
"use strict";

const Consul = require("consul");

const port = Number(process.env.TRELLIS_PORT);
const goodPort = Number(process.env.GOOD_PORT);
const badPort = Number(process.env.BAD_PORT);
const deadlineMs = Number(process.env.DEADLINE_MS || 15000);

const consul = new Consul({ host: "127.0.0.1", port });

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function summarize(entries) {
  return entries
    .map((e) => ({
      id: e.Service.ID,
      service: e.Service.Service,
      address: e.Service.Address,
      port: e.Service.Port,
      tags: e.Service.Tags,
      meta: e.Service.Meta,
      node: e.Node.Node,
      checks: e.Checks.map((c) => ({ id: c.CheckID, status: c.Status })),
    }))
    .sort((a, b) => a.id.localeCompare(b.id));
}

async function registerInstances(out) {
  for (const [id, p] of [["npm-web-good", goodPort], ["npm-web-bad", badPort]]) {
    out.register[id] = await consul.agent.service.register({
      name: "npm-web",
      id,
      address: "127.0.0.1",
      port: p,
      tags: ["npm", id],
      meta: { client: "npm-consul" },
      check: { http: `http://127.0.0.1:${p}/health`, interval: "200ms", timeout: "1s" },
    });
  }
  out.agent_services = Object.keys(await consul.agent.service.list()).sort();
}

// Polls health.service({passing: true}) until only the healthy instance is left.
async function waitPassing(out) {
  const start = Date.now();
  let passing = [];
  for (;;) {
    passing = await consul.health.service({ service: "npm-web", passing: true });
    const ids = passing.map((e) => e.Service.ID);
    if ((ids.length === 1 && ids[0] === "npm-web-good") || Date.now() - start > deadlineMs) {
      break;
    }
    await sleep(100);
  }
  out.passing_after_ms = Date.now() - start;
  out.passing = summarize(passing);
  out.all = summarize(await consul.health.service("npm-web"));
}

// kv.set resolves true on success. A lost check-and-set is `false` on the wire, but
// papi 1.1.2 turns a falsy body into `undefined`, so compare with true.
const isTrue = (v) => v === true;

async function kv(out) {
  out.kv = {};
  out.kv.create = isTrue(await consul.kv.set({ key: "npm/config/a", value: "one", cas: 0 }));
  out.kv.create_again = isTrue(await consul.kv.set({ key: "npm/config/a", value: "two", cas: 0 }));
  const a = await consul.kv.get("npm/config/a");
  out.kv.a = { value: a.Value, modify_index: a.ModifyIndex, create_index: a.CreateIndex };
  out.kv.cas_ok = isTrue(
    await consul.kv.set({ key: "npm/config/a", value: "three", cas: a.ModifyIndex }),
  );
  out.kv.cas_stale = isTrue(
    await consul.kv.set({ key: "npm/config/a", value: "four", cas: a.ModifyIndex }),
  );
  out.kv.set_b = isTrue(await consul.kv.set("npm/config/b", "bee"));
  out.kv.set_nested = isTrue(
    await consul.kv.set({ key: "npm/config/c/d", value: "deep", flags: 7 }),
  );
  out.kv.set_outside = isTrue(await consul.kv.set("npm/configuration", "not under npm/config/"));
  const rec = await consul.kv.get({ key: "npm/config/", recurse: true });
  out.kv.recurse = rec.map((e) => ({ key: e.Key, value: e.Value, flags: e.Flags }));
  out.kv.missing = (await consul.kv.get("npm/missing")) === undefined;
  out.kv.keys = await consul.kv.keys({ key: "npm/", separator: "/" });
  out.kv.del = isTrue(await consul.kv.del("npm/config/b"));
  out.kv.after_del = (await consul.kv.get({ key: "npm/config/", recurse: true })).map(
    (e) => e.Key,
  );
}

async function main() {
  const out = { register: {} };
  await registerInstances(out);
  await waitPassing(out);
  await kv(out);
  await consul.agent.service.deregister("npm-web-bad");
  out.after_deregister = summarize(await consul.health.service("npm-web")).map((e) => e.id);
  out.catalog = await consul.catalog.service.list();
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((err) => {
  const res = err.response;
  const req = res && res.req ? `${res.req.method} ${res.req.path}` : "";
  const got = res ? ` -> ${res.statusCode} ${JSON.stringify(res.body)}` : "";
  process.stderr.write(`interop failed: ${err.message}: ${req}${got}\n${err.stack}\n`);
  process.exit(1);
});
