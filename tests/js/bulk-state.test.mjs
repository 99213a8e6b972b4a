// Unit tests of bulk selection, tag input and progress text (node --test).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  MAX_TAGS, Selection, finished, parseTags, progressText, tagCounts,
} from "../../monitor_server/static/js/bulk-state.js";

test("parseTags splits on commas and spaces, keeps order, drops repeats, names refused tags", () => {
  assert.deepEqual(parseTags(" env=prod, rack-4  rack-4,site/paris "), {
    tags: ["env=prod", "rack-4", "site/paris"], bad: [],
  });
  assert.deepEqual(parseTags(""), { tags: [], bad: [] });
  assert.deepEqual(parseTags("-lead ok ü").bad, ["-lead", "ü"]);
  assert.deepEqual(parseTags("x".repeat(65)).bad, ["x".repeat(65)]);
  assert.equal(MAX_TAGS, 32);
});

test("tagCounts orders by use, then by name", () => {
  const devices = [{ tags: ["b", "a"] }, { tags: ["b"] }, {}, { tags: ["c", "a"] }];
  assert.deepEqual(tagCounts(devices), [["a", 2], ["b", 2], ["c", 1]]);
});

test("a selection survives, covers, prunes and lists sorted", () => {
  const s = new Selection();
  s.setAll(["n2", "n1", "n3"], true);
  s.set("n3", false);
  assert.deepEqual(s.list(), ["n1", "n2"]);
  assert.equal(s.covers(["n1", "n2"]), true);
  assert.equal(s.covers(["n1", "n3"]), false);
  assert.equal(s.covers([]), false);
  s.prune(new Set(["n2"]));
  assert.deepEqual(s.list(), ["n2"]);
  assert.equal(s.size, 1);
  s.clear();
  assert.equal(s.size, 0);
});

test("progress text counts acked of total, then failures and what still waits", () => {
  const counts = { pending: 3, delivered: 2, acked: 14, failed: 1, expired: 0, cancelled: 0 };
  const summary = { id: "b", command: "ping", total: 20, counts, commands: [] };
  assert.equal(progressText(summary), "14 of 20 acked · 1 failed · 5 waiting");
  assert.equal(finished(summary), false);
  const done = { ...summary, counts: { ...counts, pending: 0, delivered: 0, acked: 19 } };
  assert.equal(progressText(done), "19 of 20 acked · 1 failed");
  assert.equal(finished(done), true);
});
