// Unit tests of the events held while the page reads a list (node --test).
import assert from "node:assert/strict";
import { test } from "node:test";

import { HeldEvents } from "../../monitor_server/static/js/held-events.js";

test("nothing is held without a read under way", () => {
  const held = new HeldEvents();
  assert.equal(held.keep([{ type: "alert" }]), false);
  assert.deepEqual(held.done(), []);
});

test("events during reads come back in order after the last read, once", () => {
  const held = new HeldEvents();
  held.hold();
  held.hold();
  assert.equal(held.keep([{ n: 1 }, { n: 2 }]), true);
  assert.deepEqual(held.done(), [], "another read is under way");
  assert.equal(held.keep([{ n: 3 }]), true);
  assert.deepEqual(held.done().map((e) => e.n), [1, 2, 3]);
  assert.deepEqual(held.done(), [], "given once; more done() than hold() changes nothing");
  assert.equal(held.keep([{ n: 4 }]), false);
});
