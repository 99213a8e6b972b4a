// Unit tests of a device's maintenance on the device page: the silence body and which silences
// are the device's maintenance (node --test).
import assert from "node:assert/strict";
import { test } from "node:test";

import { localInput, maintenanceBody, maintenanceOf } from "../../monitor_server/static/js/alerts-maintenance-state.js";

const NOW = Date.parse("2026-11-27T10:00:00Z");

test("maintenance until a local time is a silence of the device alone", () => {
  const until = localInput(NOW + 2 * 3600_000);
  assert.match(until, /^\d{4}-\d\d-\d\dT\d\d:\d\d$/);
  assert.deepEqual(maintenanceBody("web-1", until, "  kernel upgrade ", NOW), {
    matchers: { device: "web-1" }, ends_at: "2026-11-27T12:00:00.000Z", comment: "kernel upgrade",
  });
  assert.equal(maintenanceBody("web-1", until, "", NOW).comment, "maintenance");
});

test("the end must be a future date and time", () => {
  assert.throws(() => maintenanceBody("web-1", "", "x", NOW), /give the time/);
  assert.throws(() => maintenanceBody("web-1", "tomorrow", "x", NOW), /not a date/);
  assert.throws(() => maintenanceBody("web-1", localInput(NOW - 60_000), "x", NOW), /in the future/);
});

test("the device's maintenance: its own silences not ended, the one ending last first", () => {
  const silence = (id, matchers, endsAt) => ({ id, matchers, ends_at: endsAt, comment: "", created_by: "op" });
  const silences = [
    silence(1, { device: "web-1" }, "2026-11-27T11:00:00Z"),
    silence(2, { device: "web-1", rule: "cpu high" }, "2026-11-27T11:00:00Z"),  // one alert, not maintenance
    silence(3, { device: "web-2" }, "2026-11-27T11:00:00Z"),
    silence(4, { device: "web-1" }, "2026-11-27T09:00:00Z"),  // ended
    silence(5, { device: "web-1" }, "2026-11-27T13:00:00Z"),
    silence(6, { rule: "gone" }, "2026-11-27T13:00:00Z"),
  ];
  assert.deepEqual(maintenanceOf(silences, "web-1", NOW).map((s) => s.id), [5, 1]);
  assert.deepEqual(maintenanceOf(silences, "web-9", NOW), []);
  assert.deepEqual(maintenanceOf([], "web-1", NOW), []);
});
