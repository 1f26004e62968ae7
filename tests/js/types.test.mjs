// The npm package's TypeScript definitions compile, and describe real use
// (tests/js/types/usage.ts, which also expects errors for misspelt events).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";

test("the .d.ts type-checks real use with tsc --strict", () => {
  let out = "";
  try {
    execFileSync(
      "node_modules/.bin/tsc",
      ["--noEmit", "--strict", "--target", "es2022", "--module", "es2022", "--moduleResolution", "bundler", "--lib", "esnext,dom", "tests/js/types/usage.ts"],
      { encoding: "utf8" },
    );
  } catch (e) {
    out = `${e.stdout}${e.stderr}`;
  }
  assert.equal(out, "", out);
});
