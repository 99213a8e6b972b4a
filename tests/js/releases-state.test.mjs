// Unit tests of the releases page's state: GET /releases and details, live `release` and `rollout`
// events, counts per state, the rollout form's body (node --test).
import assert from "node:assert/strict";
import { test } from "node:test";

import { ReleasesState, rolloutBody, sizeText, targetText } from "../../monitor_server/static/js/releases-state.js";

const T0 = "2026-11-26T12:00:00Z";
const T1 = "2026-11-26T12:00:10Z";
const T2 = "2026-11-26T12:00:20Z";
const release = (version, created_at, rollout = null) => ({
  version, sha256: "ab", signature: "cd", size: 2048, manifest: {}, created_at, created_by: "admin", rollout,
});
const rollout = (version, extra = {}) => ({
  version, target: { percent: 10 }, allow_downgrade: false, paused: false, created_at: T1, ...extra,
});
const entry = (device_id, state, updated_at = T1, reason = "") => ({ device_id, state, reason, updated_at });

test("GET /releases and the details fill the list, newest first, with counts per state", () => {
  const state = new ReleasesState();
  const seen = [];
  state.subscribe((versions) => seen.push([...versions].sort()));
  state.reset(
    [release("0.1.0", T0), release("0.2.0", T1, rollout("0.2.0"))],
    [{ version: "0.2.0", devices: [entry("a", "installed"), entry("b", "offered"), entry("c", "failed", T1, "x")] }],
  );
  assert.deepEqual(seen, [["0.1.0", "0.2.0"]]);
  assert.deepEqual(state.list().map((r) => r.version), ["0.2.0", "0.1.0"]);
  assert.deepEqual(state.counts("0.2.0"), { offered: 1, downloading: 0, installed: 1, failed: 1, rolled_back: 0 });
  assert.deepEqual(state.counts("0.1.0"), { offered: 0, downloading: 0, installed: 0, failed: 0, rolled_back: 0 });
  assert.deepEqual(state.devices("0.2.0").map((d) => d.device_id), ["a", "b", "c"]);
  assert.equal(state.get("0.2.0").rollout.target.percent, 10);
  assert.equal(state.get("9.9.9"), null);
});

test("live release events move a device between states; older ones and other events change nothing", () => {
  const state = new ReleasesState();
  state.reset([release("0.2.0", T0, rollout("0.2.0"))]);
  const seen = [];
  state.subscribe((versions) => seen.push([...versions]));
  state.apply([{ type: "release", version: "0.2.0", ...entry("a", "offered", T0) }]);
  state.apply([{ type: "release", version: "0.2.0", ...entry("a", "downloading", T1) }]);
  assert.deepEqual(state.counts("0.2.0"), { offered: 0, downloading: 1, installed: 0, failed: 0, rolled_back: 0 });
  state.apply([{ type: "release", version: "0.2.0", ...entry("a", "offered", T0) }]);  // late, older
  assert.equal(state.devices("0.2.0")[0].state, "downloading");
  state.apply([{ type: "release", version: "0.2.0", ...entry("a", "installed", T2) }, { type: "sample", device_id: "a" }]);
  assert.deepEqual(state.counts("0.2.0"), { offered: 0, downloading: 0, installed: 1, failed: 0, rolled_back: 0 });
  assert.deepEqual(seen, [["0.2.0"], ["0.2.0"], ["0.2.0"]], "the late one notified nobody");
});

test("a rollout event replaces the rollout (paused); an unknown version is returned to be read", () => {
  const state = new ReleasesState();
  state.reset([release("0.2.0", T0)]);
  assert.equal(state.get("0.2.0").rollout, null);
  const unknown = state.apply([
    { type: "rollout", ...rollout("0.2.0", { paused: true }) },
    { type: "release", version: "0.3.0", ...entry("a", "offered") },
  ]);
  assert.equal(state.get("0.2.0").rollout.paused, true);
  assert.equal("type" in state.get("0.2.0").rollout, false);
  assert.deepEqual([...unknown], ["0.3.0"]);
});

test("events during GET /releases wait for the list; unknown versions among them are returned", () => {
  const state = new ReleasesState();
  state.hold();
  assert.equal(state.apply([{ type: "release", version: "0.2.0", ...entry("a", "installed", T2) }]).size, 0);
  assert.equal(state.apply([{ type: "rollout", ...rollout("0.3.0") }]).size, 0, "held: nothing to read yet");
  state.reset([release("0.2.0", T0)], [{ version: "0.2.0", devices: [entry("a", "downloading", T1)] }]);
  assert.equal(state.devices("0.2.0")[0].state, "downloading", "held until done");
  assert.deepEqual([...state.done()], ["0.3.0"]);
  assert.equal(state.devices("0.2.0")[0].state, "installed", "the event came after the list was read");
});

test("the rollout form's body: one target, names split, downgrade only when asked", () => {
  assert.deepEqual(rolloutBody("percent", " 25 ", false), { percent: 25 });
  assert.deepEqual(rolloutBody("devices", "a, b  a", true), { devices: ["a", "b"], allow_downgrade: true });
  assert.deepEqual(rolloutBody("tags", "canary", false), { tags: ["canary"] });
  assert.throws(() => rolloutBody("percent", "101", false), /0 to 100/);
  assert.throws(() => rolloutBody("percent", "", false), /0 to 100/);
  assert.throws(() => rolloutBody("devices", " , ", false), /at least one/);
});

test("texts: the target and the size", () => {
  assert.equal(targetText(null), "not rolled out");
  assert.equal(targetText(rollout("1", { target: { devices: ["a", "b"] } })), "devices a, b");
  assert.equal(targetText(rollout("1", { target: { tags: ["x"] }, allow_downgrade: true })), "tags x · downgrade allowed");
  assert.equal(targetText(rollout("1")), "10 % of the fleet");
  assert.equal(sizeText(512), "512 B");
  assert.equal(sizeText(2048), "2 kB");
  assert.equal(sizeText(12_345_678), "12.3 MB");
});
