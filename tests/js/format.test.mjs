// Unit tests of the dashboard's text for numbers and times (node --test).
import assert from "node:assert/strict";
import { test } from "node:test";

import { ago, count, parseTime, percent, rate } from "../../monitor_server/static/js/format.js";

test("count is singular for exactly one", () => {
  assert.equal(count(1, "device"), "1 device");
  assert.equal(count(0, "device"), "0 devices");
  assert.equal(count(2, "device"), "2 devices");
});

test("percent keeps one decimal below 10 and shows a dash for no value", () => {
  assert.equal(percent(7.46), "7.5%");
  assert.equal(percent(42.4), "42%");
  assert.equal(percent(null), "–");
  assert.equal(percent(undefined), "–");
});

test("ago rounds to the coarsest unit", () => {
  const now = 1_000_000_000;
  assert.equal(ago(null, now), "never");
  assert.equal(ago(now - 2000, now), "just now");
  assert.equal(ago(now + 5000, now), "just now");  // a clock ahead is not "in the future"
  assert.equal(ago(now - 12_000, now), "12 s ago");
  assert.equal(ago(now - 180_000, now), "3 min ago");
  assert.equal(ago(now - 2 * 3_600_000, now), "2 h ago");
  assert.equal(ago(now - 3 * 86_400_000, now), "3 d ago");
});

test("rate uses decimal units per second", () => {
  assert.equal(rate(null), "–");
  assert.equal(rate(512), "512 B/s");
  assert.equal(rate(1500), "1.5 kB/s");
  assert.equal(rate(2_500_000_000_000), "2500 GB/s");
});

test("parseTime gives epoch milliseconds or null", () => {
  assert.equal(parseTime("2026-01-01T00:00:00Z"), Date.UTC(2026, 0, 1));
  assert.equal(parseTime(null), null);
});
