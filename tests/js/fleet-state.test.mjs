// Unit tests of the page's fleet state: snapshot, live events, REST merges, counts (node --test).
import assert from "node:assert/strict";
import { test } from "node:test";

import { FleetState } from "../../monitor_server/static/js/fleet-state.js";

const T0 = "2026-11-26T12:00:00Z";
const T1 = "2026-11-26T12:00:10Z";
const rest = (id, extra = {}) => ({
  device_id: id, hostname: `${id}.lan`, agent_version: "1.0", platform: "linux", online: true,
  presence_since: T0, last_seen: T0, last_payload: { cpu: 1 }, ...extra,
});

test("a snapshot replaces everything and notifies with null", () => {
  const state = new FleetState();
  const seen = [];
  state.subscribe((ids) => seen.push(ids));
  state.reset([rest("a"), rest("b", { online: false })]);
  assert.deepEqual([...state.devices.keys()], ["a", "b"]);
  assert.equal(state.devices.get("a").last_seen, Date.parse(T0));
  assert.deepEqual(seen, [null]);
  assert.deepEqual(state.counts(), { online: 1, offline: 1, total: 2 });
});

test("events update presence and samples; an old sample only moves last_seen", () => {
  const state = new FleetState();
  state.reset([rest("a")]);
  const seen = [];
  const unsubscribe = state.subscribe((ids) => seen.push([...ids]));
  state.apply([
    { type: "sample", device_id: "a", ts: T1, cpu: 50 },
    { type: "presence", device_id: "a", online: false, reason: "timeout", at: T1 },
    { type: "other", device_id: "z" },
  ]);
  const a = state.devices.get("a");
  assert.equal(a.last_payload.cpu, 50);
  assert.equal(a.online, false);
  assert.equal(a.presence_reason, "timeout");
  assert.deepEqual(seen, [["a"]]);
  state.apply([{ type: "sample", device_id: "a", ts: T0, cpu: 10 }]);
  assert.equal(state.devices.get("a").last_payload.cpu, 50);
  unsubscribe();
  state.apply([{ type: "sample", device_id: "a", ts: T1, cpu: 60 }]);
  assert.equal(seen.length, 2);
});

test("a device first seen in a sample is incomplete until a connected event brings its details", () => {
  const state = new FleetState();
  state.apply([{ type: "sample", device_id: "new", ts: T0, cpu: 3 }]);
  assert.equal(state.devices.get("new").incomplete, true);
  state.apply([{ type: "presence", device_id: "new", online: true, at: T1, hostname: "new.lan", agent_version: null, platform: "linux" }]);
  const d = state.devices.get("new");
  assert.equal(d.incomplete, false);
  assert.equal(d.hostname, "new.lan");
  assert.equal(d.online, true);
});

test("a REST answer older than a live sample or presence event does not undo them", () => {
  const state = new FleetState();
  state.reset([rest("a")]);
  state.apply([
    { type: "sample", device_id: "a", ts: T1, cpu: 77 },
    { type: "presence", device_id: "a", online: false, reason: "disconnected", at: T1 },
  ]);
  state.merge(rest("a", { hostname: "renamed.lan" }));
  const a = state.devices.get("a");
  assert.equal(a.hostname, "renamed.lan");
  assert.equal(a.last_payload.cpu, 77);
  assert.equal(a.online, false);
  assert.equal(a.last_seen, Date.parse(T1));
});

test("a removed device is forgotten and its id is reported as changed", () => {
  const state = new FleetState();
  state.reset([rest("a"), rest("b")]);
  const seen = [];
  state.subscribe((ids) => seen.push([...ids]));
  state.apply([{ type: "device_removed", device_id: "a" }]);
  assert.deepEqual([...state.devices.keys()], ["b"]);
  assert.deepEqual(seen, [["a"]]);
});
