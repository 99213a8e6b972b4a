// Unit tests of the alerts page's management bodies and summaries (node --test).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  notifierBody, ruleBody, ruleSummary, silenceSummary,
} from "../../monitor_server/static/js/alerts-admin-state.js";

test("a threshold rule from form strings", () => {
  const body = ruleBody({
    kind: "threshold", name: " cpu high ", metric: "cpu", op: ">", value: "90", clear_value: "80",
    for: "30", severity: "critical", tags: "web, db", devices: "",
  });
  assert.deepEqual(body, {
    name: "cpu high", kind: "threshold", metric: "cpu", op: ">", value: 90, clear_value: 80, for: 30,
    severity: "critical", selector: { tags: ["web", "db"] },
  });
  const bare = ruleBody({ kind: "threshold", name: "r", metric: "disk", value: "95" });
  assert.equal(bare.clear_value, undefined);
  assert.deepEqual([bare.op, bare.for, bare.severity, bare.selector], [">", 0, "warning", {}]);
});

test("an offline rule takes name, for and a selector only", () => {
  assert.deepEqual(ruleBody({ kind: "offline", name: "gone", for: "60", metric: "cpu", devices: "a b" }), {
    name: "gone", kind: "offline", for: 60, selector: { devices: ["a", "b"] },
  });
});

test("rule form errors are readable", () => {
  assert.throws(() => ruleBody({ kind: "threshold", name: "", metric: "cpu", value: "1" }), /name is required/);
  assert.throws(() => ruleBody({ kind: "threshold", name: "r", metric: "", value: "1" }), /metric is required/);
  assert.throws(() => ruleBody({ kind: "threshold", name: "r", metric: "cpu", value: "" }), /value is required/);
  assert.throws(() => ruleBody({ kind: "threshold", name: "r", metric: "cpu", value: "x" }), /value must be a number/);
  assert.throws(() => ruleBody({ kind: "offline", name: "r", for: "-1" }), /for must be 0 or more/);
});

test("notifier bodies: webhook needs http(s), apprise any service scheme", () => {
  assert.deepEqual(notifierBody({ kind: "webhook", name: "ops", url: " https://h/x " }), {
    name: "ops", kind: "webhook", url: "https://h/x",
  });
  assert.deepEqual(notifierBody({ kind: "apprise", name: "phone", url: "ntfy://topic" }).kind, "apprise");
  assert.throws(() => notifierBody({ kind: "webhook", name: "a", url: "ntfy://t" }), /http/);
  assert.throws(() => notifierBody({ kind: "apprise", name: "a", url: "topic" }), /ntfy/);
  assert.throws(() => notifierBody({ kind: "apprise", name: "", url: "ntfy://t" }), /name/);
});

test("summaries", () => {
  assert.equal(
    ruleSummary({ kind: "threshold", metric: "cpu", op: ">", value: 90, clear_value: 80, for: 30, severity: "critical", selector: {} }),
    "cpu > 90 (clear 80) for 30 s · critical · all devices",
  );
  assert.equal(ruleSummary({ kind: "offline", for: 60, selector: { tags: ["rack"] } }), "offline for 60 s · tags rack");
  assert.equal(silenceSummary({ matchers: { device: "a", rule: "cpu" }, comment: "deploy" }), "device=a, rule=cpu · deploy");
});
