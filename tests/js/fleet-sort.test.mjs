// Unit tests of the fleet table's ordering, filter and address-bar state (node --test, no DOM).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  COLUMNS, compareDevices, compareKeyed, compareValues, insertionPoint, matches, nextSort, readViewState, resort,
  sortValue, writeViewState,
} from "../../monitor_server/static/js/fleet-sort.js";

const dev = (id, extra = {}) => ({ device_id: id, online: true, last_payload: null, incomplete: false, ...extra });
const fleet = [
  dev("b", { online: false, hostname: "beta", agent_version: "1.10", last_seen: 3000, last_payload: { cpu: 97, ram: 10, disk: 50 }, last_error: "disk" }),
  dev("a", { hostname: "alpha", agent_version: "1.9", last_seen: 1000, last_payload: { cpu: 5, ram: 80, disk: 20 } }),
  dev("c", { hostname: "gamma", agent_version: "2.0", last_seen: 2000, last_payload: { cpu: 40, ram: 40, disk: 90 }, last_error: "boom" }),
  dev("d"),  // never reported anything
];
const ids = (sort) => [...fleet].sort(compareDevices(sort)).map((d) => d.device_id);

test("ascending puts the smallest value first on every column, descending the largest", () => {
  const ascending = {
    online: ["b", "a", "c", "d"], device_id: ["a", "b", "c", "d"], hostname: ["a", "b", "c", "d"],
    agent_version: ["a", "b", "c", "d"], last_seen: ["a", "c", "b", "d"], cpu: ["a", "c", "b", "d"],
    ram: ["b", "c", "a", "d"], disk: ["a", "b", "c", "d"], last_error: ["c", "b", "a", "d"],
    tags: ["a", "b", "c", "d"],  // none tagged here: all last, by id (grouping is tested below)
  };
  const descending = {  // missing values still last; equal values still by device id
    online: ["a", "c", "d", "b"], device_id: ["d", "c", "b", "a"], hostname: ["c", "b", "a", "d"],
    agent_version: ["c", "b", "a", "d"], last_seen: ["b", "c", "a", "d"], cpu: ["b", "c", "a", "d"],
    ram: ["a", "c", "b", "d"], disk: ["c", "b", "a", "d"], last_error: ["b", "c", "a", "d"],
    tags: ["a", "b", "c", "d"],
  };
  assert.deepEqual(Object.keys(ascending).sort(), Object.keys(COLUMNS).sort());
  for (const key of Object.keys(COLUMNS)) {
    assert.deepEqual(ids({ key, dir: 1 }), ascending[key], `${key} ascending`);
    assert.deepEqual(ids({ key, dir: -1 }), descending[key], `${key} descending`);
  }
});

test("text sorts in natural order: edge-2 before edge-10, 1.9 before 1.10", () => {
  const names = ["edge-10", "edge-2", "edge-1"].map((id) => dev(id));
  assert.deepEqual(names.sort(compareDevices({ key: "device_id", dir: 1 })).map((d) => d.device_id), ["edge-1", "edge-2", "edge-10"]);
  assert.equal(compareValues("1.9", "1.10"), -1);
  assert.equal(compareValues(2, 10), -1);
});

test("devices without a value come last in both directions, ties by device id", () => {
  assert.deepEqual(ids({ key: "cpu", dir: 1 }).at(-1), "d");
  assert.deepEqual(ids({ key: "cpu", dir: -1 }).at(-1), "d");
  const same = [dev("z", { last_payload: { cpu: 1 } }), dev("y", { last_payload: { cpu: 1 } })];
  assert.deepEqual(same.sort(compareDevices({ key: "cpu", dir: -1 })).map((d) => d.device_id), ["y", "z"]);
});

test("a first click sorts metrics, status and last seen descending, text ascending; a second flips", () => {
  assert.deepEqual(nextSort({ key: "device_id", dir: 1 }, "cpu"), { key: "cpu", dir: -1 });
  assert.deepEqual(nextSort({ key: "cpu", dir: -1 }, "cpu"), { key: "cpu", dir: 1 });
  assert.deepEqual(nextSort({ key: "cpu", dir: 1 }, "cpu"), { key: "cpu", dir: -1 });
  assert.deepEqual(nextSort({ key: "cpu", dir: 1 }, "online"), { key: "online", dir: -1 });
  assert.deepEqual(nextSort({ key: "cpu", dir: 1 }, "last_seen"), { key: "last_seen", dir: -1 });
  assert.deepEqual(nextSort({ key: "cpu", dir: -1 }, "hostname"), { key: "hostname", dir: 1 });
  assert.deepEqual(nextSort({ key: "device_id", dir: 1 }, "device_id"), { key: "device_id", dir: -1 });
});

test("insertionPoint finds the place after equal items", () => {
  const cmp = (a, b) => a - b;
  assert.equal(insertionPoint([], 5, cmp), 0);
  assert.equal(insertionPoint([1, 3, 5], 0, cmp), 0);
  assert.equal(insertionPoint([1, 3, 5], 3, cmp), 2);
  assert.equal(insertionPoint([1, 3, 5], 9, cmp), 3);
});

test("resort puts changed and new items in place and matches a full sort", () => {
  const value = new Map([["a", 1], ["b", 2], ["c", 3], ["d", 4], ["e", 5]]);
  const cmp = (x, y) => value.get(x) - value.get(y) || (x < y ? -1 : x > y ? 1 : 0);
  const order = ["a", "b", "c", "d", "e"];
  value.set("a", 10).set("d", 0).set("f", 2.5);  // two moved (neighbours of nobody), one new
  assert.equal(resort(order, ["a", "d", "f"], cmp), order);
  assert.deepEqual(order, ["d", "b", "f", "c", "e", "a"]);
  assert.deepEqual(order, [...value.keys()].sort(cmp));
  assert.deepEqual(resort(order, [], cmp), ["d", "b", "f", "c", "e", "a"]);
});

test("resort agrees with a full sort over random changes", () => {
  let seed = 7;
  const random = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
  const value = new Map(Array.from({ length: 200 }, (_, i) => [`d${i}`, Math.floor(random() * 50)]));
  const cmp = (x, y) => value.get(x) - value.get(y) || (x < y ? -1 : x > y ? 1 : 0);
  const order = [...value.keys()].sort(cmp);
  for (let round = 0; round < 50; round += 1) {
    const changed = Array.from({ length: 1 + Math.floor(random() * 10) }, () => `d${Math.floor(random() * 200)}`);
    for (const id of changed) value.set(id, Math.floor(random() * 50));
    resort(order, changed, cmp);
    assert.deepEqual(order, [...value.keys()].sort(cmp), `round ${round}`);
  }
});

test("matches filters by status and by text in id, host, version, error and platform", () => {
  const [b, a] = fleet;
  assert.equal(matches(b, { text: "", status: "all" }), true);
  assert.equal(matches(b, { text: "", status: "online" }), false);
  assert.equal(matches(b, { text: "", status: "offline" }), true);
  assert.equal(matches(a, { text: "alph", status: "all" }), true);
  assert.equal(matches(b, { text: "disk", status: "all" }), true);
  assert.equal(matches(a, { text: "disk", status: "all" }), false);
  assert.equal(matches(dev("x", { platform: "Linux" }), { text: "linux", status: "all" }), true);
});

test("sort and filter round-trip through the query string, other parameters kept", () => {
  const search = writeViewState("?lang=en", { key: "cpu", dir: -1 }, { text: "Web 01", status: "offline", tag: "env=prod" });
  const params = new URLSearchParams(search);
  assert.equal(params.get("lang"), "en");
  assert.deepEqual(readViewState(search), {
    sort: { key: "cpu", dir: -1 }, filter: { text: "Web 01", status: "offline", tag: "env=prod" },
  });
  assert.deepEqual(readViewState(writeViewState("", { key: "hostname", dir: 1 }, { text: "", status: "all" })).sort,
    { key: "hostname", dir: 1 });
});

test("defaults leave the query string empty and bad values fall back to defaults", () => {
  assert.equal(writeViewState("?sort=cpu&dir=desc&q=x&status=online&tag=t", { key: "device_id", dir: 1 }, { text: "", status: "all" }), "");
  assert.deepEqual(readViewState(""), { sort: { key: "device_id", dir: 1 }, filter: { text: "", status: "all", tag: "" } });
  assert.deepEqual(readViewState("?sort=__proto__&status=weird"), { sort: { key: "device_id", dir: 1 }, filter: { text: "", status: "all", tag: "" } });
  assert.deepEqual(readViewState("?sort=cpu").sort, { key: "cpu", dir: -1 });
  assert.deepEqual(readViewState("?sort=cpu&dir=asc").sort, { key: "cpu", dir: 1 });
});

test("sorting by values computed once gives the same order as comparing devices", () => {
  for (const key of Object.keys(COLUMNS)) {
    for (const dir of [1, -1]) {
      const value = sortValue({ key, dir });
      const keyed = fleet.map((d) => ({ id: d.device_id, value: value(d) })).sort(compareKeyed(dir));
      assert.deepEqual(keyed.map((k) => k.id), ids({ key, dir }), `${key} ${dir}`);
    }
  }
  assert.equal(sortValue({ key: "nonsense", dir: 1 }), COLUMNS.device_id.value);
});

test("a tag filter keeps only the devices with that tag; text also finds names and tags", () => {
  const tagged = { device_id: "n1", name: "Front web", tags: ["env=prod", "rack-4"], online: true, last_payload: null, incomplete: false };
  const plain = { device_id: "n2", online: true, last_payload: null, incomplete: false };
  assert.equal(matches(tagged, { text: "", status: "all", tag: "rack-4" }), true);
  assert.equal(matches(plain, { text: "", status: "all", tag: "rack-4" }), false);
  assert.equal(matches(tagged, { text: "front", status: "all" }), true);
  assert.equal(matches(tagged, { text: "env=pr", status: "all" }), true);
  assert.equal(matches(plain, { text: "env", status: "all" }), false);
});

test("grouping by tag puts devices with the same tags together, untagged last; names sort the device column", () => {
  const d = (device_id, tags, name) => ({ device_id, tags, name, online: true, last_payload: null, incomplete: false });
  const list = [d("a", ["web"]), d("b", []), d("c", ["db"]), d("d", ["web"]), d("e", ["db", "web"])];
  const order = (sort) => [...list].sort(compareDevices(sort)).map((x) => x.device_id);
  assert.deepEqual(order({ key: "tags", dir: 1 }), ["c", "e", "a", "d", "b"]);
  assert.deepEqual(order({ key: "tags", dir: -1 }), ["a", "d", "e", "c", "b"]);
  const named = [d("z-1", [], "Alpha"), d("a-1", [], null), d("m-1", [], "beta")];
  assert.deepEqual([...named].sort(compareDevices({ key: "device_id", dir: 1 })).map((x) => x.device_id), ["a-1", "z-1", "m-1"]);
});
