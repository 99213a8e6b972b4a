// Unit tests of the fleet table's row window: which rows a scroll position puts in the DOM (node --test).
import assert from "node:assert/strict";
import { test } from "node:test";

import { rowWindow } from "../../monitor_server/static/js/fleet-window.js";

const view = (extra) => ({ count: 10000, rowHeight: 40, listTop: 100, viewHeight: 800, overscan: 5, ...extra });

test("at the top of the page: the visible rows plus the overscan below", () => {
  // rows 0..17 are visible (100 px of header, then 700 px of rows at 40 px each)
  assert.deepEqual(rowWindow(view()), { first: 0, last: 23, padTop: 0, padBottom: (10000 - 23) * 40 });
});

test("scrolled into the list: overscan on both sides, padding for the rest", () => {
  const win = rowWindow(view({ listTop: -4000 }));  // 100 rows scrolled past
  assert.deepEqual(win, { first: 95, last: 125, padTop: 95 * 40, padBottom: (10000 - 125) * 40 });
  assert.equal(win.padTop + (win.last - win.first) * 40 + win.padBottom, 10000 * 40);  // height is kept
});

test("at the end of the list the window stops at the last row", () => {
  const win = rowWindow(view({ listTop: -(10000 * 40 - 700) }));
  assert.equal(win.last, 10000);
  assert.equal(win.padBottom, 0);
  assert.equal(win.first, 10000 - 18 - 5);
});

test("a list below or above the viewport renders only the overscan, never a negative range", () => {
  assert.deepEqual(rowWindow(view({ listTop: 5000 })), { first: 0, last: 0, padTop: 0, padBottom: 400000 });
  const above = rowWindow(view({ listTop: -500000 }));
  assert.equal(above.last, 10000);
  assert.ok(above.first <= above.last);
});

test("short and empty lists", () => {
  assert.deepEqual(rowWindow(view({ count: 3 })), { first: 0, last: 3, padTop: 0, padBottom: 0 });
  assert.deepEqual(rowWindow(view({ count: 0 })), { first: 0, last: 0, padTop: 0, padBottom: 0 });
});
