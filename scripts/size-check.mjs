#!/usr/bin/env node
// The package's size budget (size-limit's convention: .size-limit.json at the
// top of the repository). Sums the gzip -9 sizes of each entry's files and
// fails when an entry is over its `limit`. `goal` is where the budget is
// heading (issue 23); the limit ratchets down as size work lands.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const bytes = (s) => {
  const m = /^\s*([\d.]+)\s*(B|KB|kB|MB)\s*$/.exec(s);
  if (!m) throw new Error(`cannot read the size ${JSON.stringify(s)}`);
  return Math.round(Number(m[1]) * { B: 1, KB: 1000, kB: 1000, MB: 1e6 }[m[2]]);
};
let over = 0;
for (const entry of JSON.parse(readFileSync(resolve(root, ".size-limit.json"), "utf8"))) {
  // A directory counts its .js files, at any depth (the glue's snippets).
  const files = (p) =>
    statSync(resolve(root, p)).isDirectory()
      ? readdirSync(resolve(root, p), { recursive: true }).filter((f) => f.endsWith(".js")).map((f) => `${p}/${f}`)
      : [p];
  const gzipped = (p) => {
    const data = readFileSync(resolve(root, p));
    return entry.gzip === false ? data.length : gzipSync(data, { level: 9 }).length;
  };
  const sizes = entry.path.flatMap(files).map((p) => [p, gzipped(p)]);
  // `minus`: files whose sizes are taken away (a baseline: the Leptos
  // counter under the Leptos example app, for what ddp-live adds to an app).
  const less = (entry.minus ?? []).flatMap(files).map((p) => [p, gzipped(p)]);
  const total = sizes.reduce((a, [, n]) => a + n, 0) - less.reduce((a, [, n]) => a + n, 0);
  const limit = bytes(entry.limit);
  const parts = sizes.map(([p, n]) => `${p} ${n} B`).join(" + ") + less.map(([p, n]) => ` - ${p} ${n} B`).join("");
  const goal = entry.goal ? `; goal ${entry.goal}` : "";
  console.log(`size: ${entry.name}: ${total} B (${parts}); limit ${entry.limit} (${limit} B)${goal}`);
  if (total > limit) {
    console.error(`size: OVER BUDGET by ${total - limit} B: ${entry.name}`);
    over++;
  }
}
process.exit(over ? 1 : 0);
