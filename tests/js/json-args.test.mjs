// Unit tests of command arguments typed as JSON (node --test).
import assert from "node:assert/strict";
import { test } from "node:test";

import { parseArgs } from "../../monitor_server/static/js/json-args.js";

test("empty text is no arguments; a JSON object is kept; anything else is refused", () => {
  assert.equal(parseArgs("  "), null);
  assert.deepEqual(parseArgs(' {"text": "hi"} '), { text: "hi" });
  for (const bad of ["[1]", "3", '"x"', "null", "{oops"]) assert.equal(parseArgs(bad), undefined, bad);
});
