// SPDX-License-Identifier: Apache-2.0
// The official Dapr JS SDK (@dapr/dapr, HTTP protocol) against two `trellis sidecar`s
// (tests/integration/test_sidecar_dapr_sdk.py starts them and the server). App
// "sdk-caller" uses a DaprClient on CALLER_DAPR_PORT; app "sdk-callee" is a DaprServer
// on CALLEE_APP_PORT whose sidecar is CALLEE_DAPR_PORT. Every result is asserted here;
// a JSON summary on stdout lets the Python side assert the important ones again.
"use strict";

const assert = require("node:assert/strict");
const { DaprClient, DaprServer, HttpMethod, CommunicationProtocolEnum, StateConcurrencyEnum,
        DaprPubSubStatusEnum } = require("@dapr/dapr");

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`missing environment variable ${name}`);
  return v;
};

const results = {};
function record(step, value) {
  results[step] = value;
}

// The SDK's state.save/delete return {error} instead of throwing: the HTTP status is
// inside the serialised error.
function statusOf(res) {
  if (!res || !res.error) return 0;
  return JSON.parse(res.error.message).status;
}

async function stateTests(client) {
  const store = "statestore";
  let res = await client.state.save(store, [
    { key: "sdk-order", value: { id: 1, items: ["a", "b"] } },
    { key: "sdk-text", value: "hello" },
    { key: "sdk-num", value: 42 },
  ]);
  assert.deepEqual(res, {});
  assert.deepEqual(await client.state.get(store, "sdk-order"), { id: 1, items: ["a", "b"] });
  assert.equal(await client.state.get(store, "sdk-text"), "hello");
  assert.equal(await client.state.get(store, "sdk-num"), 42);
  // A missing key: 204, which the SDK returns as "".
  assert.equal(await client.state.get(store, "sdk-missing"), "");

  // ETags come with bulk reads (the SDK's get() drops the ETag header).
  const bulk = await client.state.getBulk(store, ["sdk-order", "sdk-text", "sdk-missing"]);
  assert.equal(bulk.length, 3);
  const byKey = Object.fromEntries(bulk.map((i) => [i.key, i]));
  assert.deepEqual(byKey["sdk-order"].data, { id: 1, items: ["a", "b"] });
  assert.equal(byKey["sdk-text"].data, "hello");
  assert.equal(byKey["sdk-missing"].data, undefined);
  const etag = byKey["sdk-order"].etag;
  assert.ok(etag, "bulk items carry an etag");
  record("bulk_keys", bulk.map((i) => i.key).sort());

  // A stale ETag is refused with 409; the current one wins.
  res = await client.state.save(store, [
    { key: "sdk-order", value: { id: 2 }, etag: etag + "1" },
  ]);
  assert.equal(statusOf(res), 409);
  record("stale_etag_status", statusOf(res));
  res = await client.state.save(store, [{ key: "sdk-order", value: { id: 2 }, etag }]);
  assert.deepEqual(res, {});
  assert.deepEqual(await client.state.get(store, "sdk-order"), { id: 2 });
  // first-write on an existing key without an ETag: 409.
  res = await client.state.save(store, [
    { key: "sdk-order", value: { id: 3 },
      options: { concurrency: StateConcurrencyEnum.CONCURRENCY_FIRST_WRITE } },
  ]);
  assert.equal(statusOf(res), 409);

  // Delete: the old ETag is refused, the current one deletes.
  const etag2 = (await client.state.getBulk(store, ["sdk-order"]))[0].etag;
  assert.notEqual(etag2, etag);
  res = await client.state.delete(store, "sdk-order", { etag });
  assert.equal(statusOf(res), 409);
  res = await client.state.delete(store, "sdk-order", { etag: etag2 });
  assert.deepEqual(res, {});
  assert.equal(await client.state.get(store, "sdk-order"), "");
  record("deleted", true);

  // Transaction: upsert + delete together.
  await client.state.transaction(store, [
    { operation: "upsert", request: { key: "sdk-tx1", value: { tx: 1 } } },
    { operation: "upsert", request: { key: "sdk-tx2", value: "two" } },
    { operation: "delete", request: { key: "sdk-text" } },
  ]);
  assert.deepEqual(await client.state.get(store, "sdk-tx1"), { tx: 1 });
  assert.equal(await client.state.get(store, "sdk-tx2"), "two");
  assert.equal(await client.state.get(store, "sdk-text"), "");
  // A failing transaction (stale ETag) changes nothing and throws with 409.
  const txEtag = (await client.state.getBulk(store, ["sdk-tx1"]))[0].etag;
  await assert.rejects(
    client.state.transaction(store, [
      { operation: "upsert", request: { key: "sdk-tx3", value: 3 } },
      { operation: "delete", request: { key: "sdk-tx1", etag: txEtag + "9" } },
    ]),
    (e) => JSON.parse(e.message).status === 409,
  );
  assert.equal(await client.state.get(store, "sdk-tx3"), "");
  record("transaction", "ok");

  // An unknown store is an error the SDK throws.
  await assert.rejects(client.state.get("no-such-store", "k"),
                       (e) => JSON.parse(e.message).status === 400);
}

async function invokeTests(client) {
  const r = await client.invoker.invoke("sdk-callee", "echo", HttpMethod.POST,
                                        { hello: "world", n: 7 });
  assert.equal(r.from, "sdk-callee");
  assert.deepEqual(r.got, { hello: "world", n: 7 });
  assert.equal(r.caller, "sdk-caller");
  assert.ok(r.traceparent && r.traceparent.length === 55, "traceparent reaches the app");
  record("invoke_post", r);
  const g = await client.invoker.invoke("sdk-callee", "ping", HttpMethod.GET);
  assert.deepEqual(g, { pong: true });
  record("invoke_get", g);
  // An app id nobody registered: the SDK throws with Dapr's 500.
  await assert.rejects(client.invoker.invoke("sdk-nobody", "x", HttpMethod.GET),
                       (e) => JSON.parse(e.message).status === 500 &&
                              JSON.parse(JSON.parse(e.message).error_msg).errorCode ===
                                "ERR_DIRECT_INVOKE");
}

async function secretTests(client) {
  assert.deepEqual(await client.secret.get("localsecrets", "db:password"),
                   { "db:password": "pw-sdk" });
  const all = await client.secret.getBulk("localsecrets");
  assert.deepEqual(all["db:user"], { "db:user": "sdk-user" });
  assert.deepEqual(all["apiKey"], { apiKey: "k-sdk" });
  record("secret_keys", Object.keys(all).sort());
  await assert.rejects(client.secret.get("nostore", "x"),
                       (e) => JSON.parse(e.message).status === 401);
}

// ---- pub/sub (helper "pubsub") ----

// What the callee's DaprServer subscriptions received, filled by subscribePubsub().
const inbox = { orders: [], retried: [], dropped: [], dead: [], headers: [] };

async function subscribePubsub(server) {
  const S = DaprPubSubStatusEnum;
  await server.pubsub.subscribe("pubsub", "sdk-orders", async (data, headers) => {
    inbox.orders.push(data);
    inbox.headers.push(headers);
    return S.SUCCESS;
  });
  // RETRY the first delivery: the sidecar redelivers after its backoff.
  await server.pubsub.subscribe("pubsub", "sdk-retry", async (data) => {
    inbox.retried.push(data);
    return inbox.retried.length === 1 ? S.RETRY : S.SUCCESS;
  });
  // DROP with a dead-letter topic: the event moves there.
  await server.pubsub.subscribeWithOptions("pubsub", "sdk-drop", {
    deadLetterTopic: "sdk-dead",
    callback: async (data) => {
      inbox.dropped.push(data);
      return S.DROP;
    },
  });
  await server.pubsub.subscribe("pubsub", "sdk-dead", async (data) => {
    inbox.dead.push(data);
    return S.SUCCESS;
  });
}

async function waitFor(cond, what, ms = 15000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function pubsubTests(client) {
  assert.deepEqual(await client.pubsub.publish("pubsub", "sdk-orders", { id: 1, item: "book" }),
                   {});
  assert.deepEqual(await client.pubsub.publish("pubsub", "sdk-orders", "plain text"), {});
  // With metadata (a TTL the sidecar turns into the event's expiration).
  assert.deepEqual(await client.pubsub.publish("pubsub", "sdk-orders", { id: 2 },
                                               { metadata: { ttlInSeconds: "60" } }), {});
  const bulk = await client.pubsub.publishBulk("pubsub", "sdk-orders", [{ id: 3 }, "bulk text"]);
  assert.deepEqual(bulk.failedMessages, []);
  await waitFor(() => inbox.orders.length === 5, "5 deliveries on sdk-orders");
  const asText = inbox.orders.map((d) => JSON.stringify(d)).sort();
  assert.deepEqual(asText, ['"bulk text"', '"plain text"', '{"id":1,"item":"book"}',
                            '{"id":2}', '{"id":3}']);
  for (const h of inbox.headers) {
    assert.equal(h["content-type"], "application/cloudevents+json");
    assert.equal(h["traceparent"].length, 55);
  }
  record("pubsub_orders", asText);

  assert.deepEqual(await client.pubsub.publish("pubsub", "sdk-retry", { n: 1 }), {});
  await waitFor(() => inbox.retried.length === 2, "a redelivery after RETRY");
  record("pubsub_retried", inbox.retried);

  assert.deepEqual(await client.pubsub.publish("pubsub", "sdk-drop", { poison: true }), {});
  await waitFor(() => inbox.dead.length === 1, "the dropped event on the dead-letter topic");
  assert.equal(inbox.dropped.length, 1);
  record("pubsub_dead", inbox.dead);

  // An unknown pub/sub component: the SDK reports the sidecar's 404.
  const bad = await client.pubsub.publish("no-such-pubsub", "t", { x: 1 });
  assert.ok(bad.error, "publishing to an unknown pubsub fails");
  const err = JSON.parse(bad.error.message);
  assert.equal(err.status, 404);
  assert.equal(JSON.parse(err.error_msg).errorCode, "ERR_PUBSUB_NOT_FOUND");
  record("pubsub_unknown_status", err.status);

  // The DaprServer's subscriptions as the sidecar lists them.
  const meta = await new DaprClient({
    daprHost: "127.0.0.1", daprPort: env("CALLEE_DAPR_PORT"),
    communicationProtocol: CommunicationProtocolEnum.HTTP,
  }).metadata.get();
  record("pubsub_subscriptions", meta.subscriptions.map((s) => s.topic).sort());
}

async function main() {
  const protocol = CommunicationProtocolEnum.HTTP;
  const calleeServer = new DaprServer({
    serverHost: "127.0.0.1",
    serverPort: env("CALLEE_APP_PORT"),
    communicationProtocol: protocol,
    clientOptions: { daprHost: "127.0.0.1", daprPort: env("CALLEE_DAPR_PORT") },
  });
  await calleeServer.invoker.listen("echo", async (data) => ({
    from: "sdk-callee",
    got: JSON.parse(data.body),
    caller: data.headers["dapr-caller-app-id"],
    traceparent: data.headers["traceparent"],
  }), { method: HttpMethod.POST });
  await calleeServer.invoker.listen("ping", async () => ({ pong: true }),
                                    { method: HttpMethod.GET });

  // ---- pub/sub (helper "pubsub"): DaprServer subscriptions go here, before start() ----
  await subscribePubsub(calleeServer);

  await calleeServer.start();

  const client = new DaprClient({
    daprHost: "127.0.0.1",
    daprPort: env("CALLER_DAPR_PORT"),
    communicationProtocol: protocol,
  });
  await client.start(); // waits on GET /v1.0/metadata
  record("metadata_id", (await client.metadata.get()).id);
  assert.equal(results.metadata_id, "sdk-caller");
  assert.equal(await client.health.isHealthy(), true);

  await stateTests(client);
  await invokeTests(client);
  await secretTests(client);

  // ---- pub/sub (helper "pubsub"): client.pubsub.publish(...) and delivery checks ----
  await pubsubTests(client);

  await client.stop();
  await calleeServer.stop();
  console.log(JSON.stringify(results));
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error("FAILED:", e && e.stack ? e.stack : e);
    process.exit(1);
  },
);
