// Unit tests of the dashboard's text for numbers and times (node --test).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  ago, axisFormat, bytes, celsius, chartStep, count, decimal, duration, nearest, parseTime, percent, rate, ticks, usedOf,
} from "../../monitor_server/static/js/format.js";

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

test("bytes uses binary units and whole bytes", () => {
  assert.equal(bytes(null), "–");
  assert.equal(bytes(0), "0 B");
  assert.equal(bytes(512), "512 B");
  assert.equal(bytes(1536), "1.5 KiB");
  assert.equal(bytes(16 * 1024 ** 3), "16 GiB");
  assert.equal(bytes(3.25 * 1024 ** 4), "3.3 TiB");
});

test("usedOf gives used, total and the share, or what is known", () => {
  assert.equal(usedOf(4 * 1024 ** 3, 16 * 1024 ** 3), "4.0 GiB / 16 GiB (25%)");
  assert.equal(usedOf(512, undefined), "512 B");
  assert.equal(usedOf(null, 1024), "– / 1.0 KiB");
  assert.equal(usedOf(null, null), "–");
  assert.equal(usedOf(0, 0), "0 B / 0 B");
});

test("duration keeps the two largest units", () => {
  assert.equal(duration(null), "–");
  assert.equal(duration(-1), "–");
  assert.equal(duration(0), "0 s");
  assert.equal(duration(42), "42 s");
  assert.equal(duration(12 * 60 + 5), "12 min 5 s");
  assert.equal(duration(4 * 3600 + 12 * 60 + 9), "4 h 12 min");
  assert.equal(duration(3 * 86400 + 4 * 3600 + 59), "3 d 4 h");
  assert.equal(duration(2 * 86400 + 30), "2 d");
  assert.equal(duration(3600), "1 h");
});

test("decimal and celsius", () => {
  assert.equal(decimal(0.4234), "0.42");
  assert.equal(decimal(12), "12");
  assert.equal(decimal(null), "–");
  assert.equal(celsius(54.46), "54.5 °C");
  assert.equal(celsius(undefined), "–");
});

test("chartStep draws any range in at most 1000 buckets, from the hub's tiers beyond a minute", () => {
  assert.equal(chartStep(3600), 5);
  assert.equal(chartStep(6 * 3600), 30);
  assert.equal(chartStep(86400), 120);
  assert.equal(chartStep(7 * 86400), 900);
  assert.equal(chartStep(30 * 86400), 3600);
  assert.equal(chartStep(365 * 86400), 43200);
  assert.equal(chartStep(10 * 365 * 86400), 86400);  // beyond: the largest step
  for (const range of [3600, 86400, 30 * 86400, 365 * 86400]) {
    const step = chartStep(range);
    assert.ok(range / step <= 1000 && range / step >= 300, `${range}: ${range / step} points`);
    assert.ok(step < 60 || step % 60 === 0);  // whole minute rows, whole hours from 3600 up
    assert.ok(step < 3600 || step % 3600 === 0);
  }
});

test("axisFormat shows times for a day, then days, then dates", () => {
  const day = 86_400_000;
  assert.deepEqual(axisFormat(3_600_000), { hour: "2-digit", minute: "2-digit" });
  assert.ok("day" in axisFormat(7 * day) && "hour" in axisFormat(7 * day));
  assert.ok(!("hour" in axisFormat(30 * day)));
  assert.equal(axisFormat(365 * day).year, "2-digit");
});

test("ticks spans the range evenly, ends included", () => {
  assert.deepEqual(ticks(0, 100, 5), [0, 25, 50, 75, 100]);
});

test("nearest finds the closest point by time", () => {
  const points = [{ t: 0 }, { t: 10 }, { t: 20 }];
  assert.equal(nearest([], 5), -1);
  assert.equal(nearest(points, -5), 0);
  assert.equal(nearest(points, 4), 0);
  assert.equal(nearest(points, 6), 1);
  assert.equal(nearest(points, 15), 1);  // a tie goes to the earlier point
  assert.equal(nearest(points, 99), 2);
});
