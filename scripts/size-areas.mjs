#!/usr/bin/env node
// What each part of the library costs in the npm package's wasm: every item
// twiggy lists is put in one area (by its name: the module it comes from, or
// the first ddp-live type a generic item of core/alloc/hashbrown is made
// for, or the JS export a shim belongs to), and the areas are printed with
// their raw bytes and their share of the gzipped wasm (the raw share scaled
// to the gzipped size: an estimate, gzip is not additive).
//
// Needs the function names, so a profiling build:
//   PROFILING=1 SIZE_BREAKDOWN=0 scripts/build-pkg.sh && node scripts/size-areas.mjs [--write]
// (then rebuild the package without PROFILING). --write puts the table in
// docs/benchmarks.md, as its section "Package size by area".
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const args = process.argv.slice(2);
const write = args.includes("--write");
const wasm = args.find((a) => !a.startsWith("--")) ?? "pkg/ddp_live_bg.wasm";
const csv = execFileSync("twiggy", ["top", "-n", "1000000", "--format", "csv", wasm], { maxBuffer: 1 << 28 }).toString();
const rows = csv
  .trim()
  .split("\n")
  .slice(1)
  .map((line) => {
    // Name,ShallowSize,ShallowSizePercent,RetainedSize,RetainedSizePercent
    // (a name holding a comma or a quote is quoted, its quotes doubled)
    const m = /^(.*),(\d+),[\d.]+,[\d.]*,[\d.]*$/.exec(line);
    if (!m) return null;
    const name = m[1].startsWith('"') ? m[1].slice(1, -1).replaceAll('""', '"') : m[1];
    return { name, size: Number(m[2]) };
  })
  .filter(Boolean);
if (!rows.some((r) => r.name.includes("ddp_live::"))) {
  console.error("size-areas: the wasm has no function names; build it with PROFILING=1 scripts/build-pkg.sh");
  process.exit(1);
}

// The wasm's exports (the JS API's narrow ABI, src/js/mod.rs, and
// wasm-bindgen's own): an item named like one is that export's wrapper.
const exportNames = new Set(rows.map((r) => /^export "(.+)"$/.exec(r.name)?.[1]).filter(Boolean));

// A ddp-live module path (or a JS export's name) → its area.
const byModule = [
  [/query|Query/, "live queries (selectors, sort, projection, observe)"],
  [/accounts|Accounts|sha256|login|logout|createUser|user_?[iI]d|onUserIdChange|onLoggingInChange|loggingIn|persistLogin|resume_token/, "accounts (login, password digest, resume)"],
  [/room|Room|^(client|connection)_/, "rooms (js-collaboration Connection)"],
  [/stubs|Stub|random|Random/, "client stubs and Meteor ids"],
  [/ddp_live::js\b|^(ddp[a-z]*|ejson)_[A-Za-z]+$/, "JS API (exports, argument reading, JS values)"],
  [/protocol::(machine|message|json|retry|status|url|hash|order)/, "protocol core (state machine, frames, JSON)"],
  [/data|store|doc::|ejson|Ejson|Mirror|Collection/, "document store, collections, EJSON"],
  [/connection|browser|reactive|platform|Inner|ListenerHandle|Registry|Observable/, "browser driver and reactive layer"],
];
const areaOfPath = (path) => byModule.find(([re]) => re.test(path))?.[1];
function area(name) {
  if (name.startsWith("data segment")) return "data segments (strings, tables)";
  if (/function names|custom section|producers|target_features/.test(name)) return null;
  // A JS export's shim: the export's name says which API it belongs to.
  const shim = /^(\w+?) (externref shim|multivalue shim)/.exec(name) ?? (exportNames.has(name) && [name, name]);
  if (shim && !/^__/.test(shim[1])) return areaOfPath(shim[1]) ?? "JS API (exports, argument reading, JS values)";
  if (/dlmalloc|talc::|__rdl_|__rust_(alloc|dealloc|realloc)|__rg_/.test(name)) return "allocator (talc)";
  const own = /ddp_live::[\w:]+/.exec(name);
  if (own) return areaOfPath(own[0]) ?? "browser driver and reactive layer";
  if (/futures_signals|futures_channel|futures_core|futures_util/.test(name)) return "futures-signals / channels";
  if (/wasm_bindgen|js_sys|web_sys|__wbg|__wbindgen|__externref|^import |^export |^elem|^table|^type\[|^code\[/.test(name)) return "wasm-bindgen runtime, imports, tables";
  if (/serde_json|serde|indexmap/.test(name)) return "serde_json Value, indexmap";
  if (/fmt|panic|Formatter|escape_debug|slice_error_fail|unwrap_failed|expect_failed|str_index_overflow/.test(name)) return "formatting and panics (core::fmt)";
  return "Rust core/alloc/hashbrown, not attributed";
}

const totals = new Map();
let total = 0;
for (const { name, size } of rows) {
  const a = area(name);
  if (a == null) continue;
  totals.set(a, (totals.get(a) ?? 0) + size);
  total += size;
}
// The gzipped size of the code and data, without the name section: the
// module as shipped (build-pkg.sh strips the names).
const shipped = gzipSync(stripNames(readFileSync(wasm)), { level: 9 }).length;
const lines = [`| area | raw bytes | share | ≈ gzipped |`, `| --- | --- | --- | --- |`];
for (const [a, n] of [...totals].sort((x, y) => y[1] - x[1])) {
  lines.push(`| ${a} | ${n} | ${((100 * n) / total).toFixed(1)} % | ${((shipped * n) / total / 1000).toFixed(1)} KB |`);
}
lines.push(`| total (the wasm) | ${total} | 100 % | ${(shipped / 1000).toFixed(1)} KB |`);
const table = lines.join("\n");
console.log(table);

if (write) {
  const section = `## Package size by area

Produced by \`node scripts/size-areas.mjs --write\` on a profiling build of
the package (\`PROFILING=1 scripts/build-pkg.sh\`: the same code, with
function names), ${new Date().toISOString().slice(0, 10)}. Every item of the wasm that twiggy lists is
put in one area: by the module it comes from, by the first ddp-live type a
generic item of core/alloc/hashbrown is made for (drop glue, maps, vectors
of that type), or by the JS export a wasm-bindgen shim belongs to. Items
generic over no ddp-live type are "not attributed". The gzipped column
scales each area's raw share to the gzipped wasm: an estimate (gzip is not
additive). The JS API (ts/ddp_live.ts bundled with the wasm-bindgen glue,
not in the table) adds about 10 KB gzipped.

${table}
`;
  const doc = readFileSync("docs/benchmarks.md", "utf8");
  const parts = doc.split(/^(?=## )/m);
  const at = parts.findIndex((p) => p.startsWith("## Package size by area"));
  if (at >= 0) parts[at] = section + "\n";
  else parts.push("\n" + section);
  writeFileSync("docs/benchmarks.md", parts.join("").replace(/\n{3,}/g, "\n\n"));
  console.log("written to docs/benchmarks.md");
}

// The module without its custom sections (section id 0): names and producers.
function stripNames(buf) {
  const out = [buf.subarray(0, 8)];
  let i = 8;
  while (i < buf.length) {
    const id = buf[i];
    let len = 0;
    let shift = 0;
    let j = i + 1;
    for (;;) {
      const b = buf[j++];
      len |= (b & 0x7f) << shift;
      shift += 7;
      if (!(b & 0x80)) break;
    }
    if (id !== 0) out.push(buf.subarray(i, j + len));
    i = j + len;
  }
  return Buffer.concat(out);
}
