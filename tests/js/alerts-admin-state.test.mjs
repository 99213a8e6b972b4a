// Unit tests of the alerts page's management bodies and summaries (node --test).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  notifierBody, ruleBody, ruleFormValues, ruleSummary, ruleUpdateBody, silenceSummary,
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

test("an offline or status rule takes name, for, severity and a selector only", () => {
  assert.deepEqual(ruleBody({ kind: "offline", name: "gone", for: "60", metric: "cpu", devices: "a b" }), {
    name: "gone", kind: "offline", for: 60, severity: "warning", selector: { devices: ["a", "b"] },
  });
  assert.deepEqual(ruleBody({ kind: "status", name: "err", for: "0", severity: "critical", value: "3" }), {
    name: "err", kind: "status", for: 0, severity: "critical", selector: {},
  });
});

test("a rule routed to the notifiers ticked (ids, once each); none ticked: no notifiers field", () => {
  const base = { kind: "threshold", name: "r", metric: "cpu", value: "90" };
  assert.deepEqual(ruleBody({ ...base, notifiers: ["3", "1", "3"] }).notifiers, [3, 1]);
  assert.equal("notifiers" in ruleBody({ ...base, notifiers: [] }), false);
  assert.equal("notifiers" in ruleBody(base), false);
  assert.throws(() => ruleBody({ ...base, notifiers: ["x"] }), /unknown notifier x/);
});

test("the edit form's PATCH body clears what the form leaves empty", () => {
  const threshold = ruleUpdateBody({ kind: "threshold", name: "r", metric: "cpu", op: ">=", value: "90", for: "5" });
  assert.deepEqual(threshold, {
    clear_value: null, name: "r", kind: "threshold", metric: "cpu", op: ">=", value: 90, for: 5,
    severity: "warning", selector: {}, notifiers: [],
  });
  assert.equal(ruleUpdateBody({ kind: "threshold", name: "r", metric: "cpu", value: "90", clear_value: "80" }).clear_value, 80);
  const offline = ruleUpdateBody({ kind: "offline", name: "gone", for: "60", notifiers: ["2"] });
  assert.deepEqual(offline, {
    metric: null, op: null, value: null, clear_value: null, name: "gone", kind: "offline", for: 60,
    severity: "warning", selector: {}, notifiers: [2],
  });
});

test("a rule as the form's values, and back to the same body", () => {
  const rule = {
    id: 4, name: "cpu high", kind: "threshold", metric: "cpu", op: "!=", value: 90, clear_value: null, for: 30,
    severity: "critical", selector: { tags: ["web", "db"], devices: ["a"] }, notifiers: [2, 5],
  };
  const values = ruleFormValues(rule);
  assert.deepEqual(values, {
    kind: "threshold", name: "cpu high", metric: "cpu", op: "!=", value: "90", clear_value: "", for: "30",
    severity: "critical", tags: "web, db", devices: "a", notifiers: ["2", "5"],
  });
  assert.deepEqual(ruleUpdateBody(values), {
    clear_value: null, name: "cpu high", kind: "threshold", metric: "cpu", op: "!=", value: 90, for: 30,
    severity: "critical", selector: { tags: ["web", "db"], devices: ["a"] }, notifiers: [2, 5],
  });
  const offline = ruleFormValues({ name: "gone", kind: "offline", for: 60, severity: "warning", selector: {} });
  assert.deepEqual([offline.metric, offline.value, offline.op, offline.tags, offline.notifiers], ["", "", ">", "", []]);
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
  assert.equal(
    ruleSummary({ kind: "offline", for: 60, selector: {}, notifiers: [1, 7] }, new Map([[1, "ops"]])),
    "offline for 60 s · all devices · to ops, #7",
  );
  assert.equal(silenceSummary({ matchers: { device: "a", rule: "cpu" }, comment: "deploy" }), "device=a, rule=cpu · deploy");
});
