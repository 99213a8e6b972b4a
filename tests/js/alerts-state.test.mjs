// Unit tests of the page's alerts list: GET /alerts, live `alert` events, counts, silence bodies (node --test).
import assert from "node:assert/strict";
import { test } from "node:test";

import { AlertsState, silenceBody } from "../../monitor_server/static/js/alerts-state.js";

const T0 = "2026-11-26T12:00:00Z";
const T1 = "2026-11-26T12:00:10Z";
const alert = (device, state, extra = {}) => ({
  rule_id: 1, rule: "cpu busy", severity: "warning", kind: "threshold", device_id: device, state,
  silenced: false, since: T0, fired_at: state === "firing" ? T0 : null, value: 75, ...extra,
});

test("GET /alerts fills the list and notifies the devices concerned", () => {
  const state = new AlertsState();
  const seen = [];
  state.subscribe((ids) => seen.push([...ids].sort()));
  state.reset([alert("a", "firing"), alert("b", "pending")]);
  assert.deepEqual(seen, [["a", "b"]]);
  assert.equal(state.firing("a"), 1);
  assert.equal(state.firing("b"), 0);
  assert.deepEqual(state.counts(), { firing: 1, pending: 1, silenced: 0 });
  state.reset([]);
  assert.deepEqual(seen[1], ["a", "b"], "a reset tells the devices that lost their alerts");
  assert.equal(state.list().length, 0);
});

test("live events: pending then firing replace, ok resolves, other events change nothing", () => {
  const state = new AlertsState();
  const seen = [];
  state.subscribe((ids) => seen.push([...ids]));
  state.apply([{ type: "alert", ...alert("a", "pending") }]);
  state.apply([{ type: "alert", ...alert("a", "firing", { since: T1, value: 80 }) }]);
  assert.equal(state.list().length, 1);
  const [shown] = state.list();
  assert.equal(shown.state, "firing");
  assert.equal(shown.value, 80);
  assert.equal(shown.type, undefined, "kept as GET /alerts lists it");
  state.apply([{ type: "sample", device_id: "a", cpu: 3 }, { type: "presence", device_id: "a", online: true }]);
  assert.equal(seen.length, 2, "no notification without an alert change");
  state.apply([{ type: "alert", ...alert("a", "ok") }]);
  assert.deepEqual(state.list(), []);
  assert.equal(state.firing("a"), 0);
  state.apply([{ type: "alert", ...alert("a", "ok") }]);
  assert.equal(seen.length, 3, "resolving an alert not shown changes nothing");
});

test("a rule and device pair is one alert; another rule on the device is another", () => {
  const state = new AlertsState();
  state.apply([
    { type: "alert", ...alert("a", "firing") },
    { type: "alert", ...alert("a", "firing", { rule_id: 2, rule: "ram", since: T1 }) },
    { type: "alert", ...alert("b", "pending", { silenced: true }) },
  ]);
  assert.equal(state.firing("a"), 2);
  assert.deepEqual(state.list("a").map((a) => a.rule_id), [1, 2]);
  assert.deepEqual(state.list().map((a) => a.state), ["firing", "firing", "pending"], "firing first");
  assert.deepEqual(state.counts(), { firing: 2, pending: 1, silenced: 1 });
});

test("a removed device's alerts go", () => {
  const state = new AlertsState();
  state.reset([alert("a", "firing"), alert("b", "firing")]);
  state.apply([{ type: "device_removed", device_id: "a" }]);
  assert.deepEqual(state.list().map((a) => a.device_id), ["b"]);
});

test("silencing one alert: its device and rule, an ISO end time, the comment", () => {
  const now = Date.parse(T0);
  assert.deepEqual(silenceBody(alert("a", "firing"), 3600, "looking", now), {
    matchers: { device: "a", rule: "cpu busy" }, ends_at: "2026-11-26T13:00:00.000Z", comment: "looking",
  });
});

test("events during GET /alerts wait for its list and are applied after it, in order", () => {
  const state = new AlertsState();
  state.hold();
  state.apply([{ type: "alert", ...alert("a", "firing") }]);  // fired after the list was read
  state.apply([{ type: "alert", ...alert("b", "pending") }, { type: "alert", ...alert("b", "ok") }]);
  assert.deepEqual(state.list(), [], "held, not applied");
  state.reset([alert("c", "firing")]);
  state.done();
  assert.deepEqual(state.list().map((a) => `${a.device_id}:${a.state}`), ["a:firing", "c:firing"]);
  state.apply([{ type: "alert", ...alert("a", "ok") }]);
  assert.deepEqual(state.list().map((a) => a.device_id), ["c"], "applied directly once done");
});

test("overlapping reads apply the held events after the last; a failed read still releases them", () => {
  const state = new AlertsState();
  state.hold();
  state.hold();
  state.apply([{ type: "alert", ...alert("a", "firing") }]);
  state.reset([]);
  state.done();
  assert.deepEqual(state.list(), [], "still held: the second read is under way");
  state.reset([]);
  state.done();
  assert.equal(state.firing("a"), 1);
  state.hold();
  state.apply([{ type: "alert", ...alert("a", "ok") }]);
  state.done();  // the read failed: no reset
  assert.equal(state.firing("a"), 0);
});
