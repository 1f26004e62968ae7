#!/usr/bin/env node
// Panics trap at once, as nightly's `panic_immediate_abort` makes them, on
// stable Rust: rewrites the body of every panic entry point of core, alloc
// and std in the wasm (found by its name in the name section, which
// wasm-bindgen keeps) to a single `unreachable`, so wasm-opt then drops the
// panic machinery and the formatting it feeds (the messages' `Display` and
// `Debug` code, `core::fmt::write`'s callers on panic paths).
//
// Behaviour is unchanged: the package is built with `panic = "abort"` and
// sets no panic hook, so a panic in the wasm already ended in a trap
// (`RuntimeError: unreachable`) with its message printed nowhere
// (wasm32-unknown-unknown has no stderr). Every function rewritten here
// diverges (`-> !`): it never returned, and now it traps sooner. Nothing
// else is touched; memory safety is not affected (a trap stops the module).
//
//   node scripts/wasm-trap-panics.mjs in.wasm [out.wasm]   (out defaults to in)
import { readFileSync, writeFileSync } from "node:fs";

// The diverging entry points through which every panic of the standard
// library goes (each ends in core::panicking::panic_fmt or std's panic
// handler). Matched against the demangled names ("core[hash]::panicking::…").
const divergent = [
  /^core(\[[0-9a-f]+\])?::panicking::/,
  /^std(\[[0-9a-f]+\])?::panicking::(begin_panic|begin_panic_handler|rust_panic|rust_panic_with_hook|panic_with_hook)$/,
  /^std(\[[0-9a-f]+\])?::rt::panic_fmt/,
  /^(__rustc::)?rust_begin_unwind$/,
  /^(__rustc::)?__rust_start_panic$/,
  /^core(\[[0-9a-f]+\])?::(result::unwrap_failed|option::(unwrap_failed|expect_failed))$/,
  /^core(\[[0-9a-f]+\])?::str::(slice_error_fail|slice_error_fail_rt|slice_error_fail_ct)$/,
  /^core(\[[0-9a-f]+\])?::slice::index::(slice_\w+_fail|slice_index_fail|\w+_index_\w+_fail)$/,
  /^core(\[[0-9a-f]+\])?::cell::(panic_already_borrowed|panic_already_mutably_borrowed|lazy::panic_poisoned)$/,
  /^std(\[[0-9a-f]+\])?::thread::local::panic_access_error$/,
  /^alloc(\[[0-9a-f]+\])?::raw_vec::(capacity_overflow|handle_error)$/,
  /^alloc(\[[0-9a-f]+\])?::alloc::handle_alloc_error$/,
  /^std(\[[0-9a-f]+\])?::alloc::rust_oom$/,
  /^(__rustc::)?__rg_oom$/,
];
// Of core::panicking, only diverging functions: its `Location`/`Display`
// helpers return, so they are never rewritten.
const returning = /::panicking::.*(fmt::Display|fmt::Debug|Location|AssertKind)/;

const [input, output = input] = process.argv.slice(2);
if (!input) {
  console.error("usage: wasm-trap-panics.mjs in.wasm [out.wasm]");
  process.exit(2);
}
const buf = readFileSync(input);
if (buf.readUInt32LE(0) !== 0x6d736100) throw new Error(`${input}: not a wasm module`);

function leb(at) {
  let value = 0, shift = 0, b;
  do {
    b = buf[at++];
    value += (b & 0x7f) * 2 ** shift;
    shift += 7;
  } while (b & 0x80);
  return [value, at];
}
function encodeLeb(n) {
  const out = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return Buffer.from(out);
}

// The sections, and what we need of them.
const sections = [];
let importedFuncs = 0;
const names = new Map();
for (let i = 8; i < buf.length; ) {
  const id = buf[i];
  const [size, start] = leb(i + 1);
  const end = start + size;
  sections.push({ id, head: i, start, end });
  if (id === 2) importedFuncs = countImportedFunctions(start);
  if (id === 0) readNames(start, end);
  i = end;
}
if (!names.size) throw new Error(`${input}: no function names (the name section is needed)`);

function readName(at) {
  const [len, p] = leb(at);
  return [buf.toString("utf8", p, p + len), p + len];
}
function countImportedFunctions(at) {
  let [count, p] = leb(at);
  let funcs = 0;
  while (count--) {
    [, p] = readName(p);
    [, p] = readName(p);
    const kind = buf[p++];
    if (kind === 0) {
      funcs++;
      [, p] = leb(p);
    } else if (kind === 1 || kind === 2) {
      if (kind === 1) p++; // reftype
      const flags = buf[p++];
      [, p] = leb(p);
      if (flags & 1) [, p] = leb(p);
    } else if (kind === 3) {
      p += 2; // valtype, mutability
    } else if (kind === 4) {
      p++;
      [, p] = leb(p);
    } else throw new Error(`unknown import kind ${kind}`);
  }
  return funcs;
}
function readNames(start, end) {
  const [section, p0] = readName(start);
  if (section !== "name") return;
  for (let p = p0; p < end; ) {
    const sub = buf[p];
    const [size, s] = leb(p + 1);
    if (sub === 1) {
      let [count, q] = leb(s);
      while (count--) {
        let idx, name;
        [idx, q] = leb(q);
        [name, q] = readName(q);
        names.set(idx, name);
      }
    }
    p = s + size;
  }
}

// Rewrite the code section: a matched function's body becomes
// `(no locals) unreachable end`.
const trapBody = Buffer.from([0x03, 0x00, 0x00, 0x0b]);
const rewritten = [];
const parts = [buf.subarray(0, 8)];
for (const s of sections) {
  if (s.id !== 10) {
    parts.push(buf.subarray(s.head, s.end));
    continue;
  }
  let [count, p] = leb(s.start);
  const bodies = [encodeLeb(count)];
  for (let i = 0; i < count; i++) {
    const [size, b] = leb(p);
    const name = names.get(importedFuncs + i) ?? "";
    if (divergent.some((re) => re.test(name)) && !returning.test(name)) {
      bodies.push(trapBody);
      rewritten.push(name);
    } else {
      bodies.push(buf.subarray(p, b + size));
    }
    p = b + size;
  }
  const content = Buffer.concat(bodies);
  parts.push(Buffer.from([10]), encodeLeb(content.length), content);
}
// Every panic goes through core::panicking::panic_fmt: a toolchain that
// renamed it would leave the machinery in, silently. Say so instead.
if (!rewritten.some((n) => /::panicking::panic_fmt$/.test(n))) {
  throw new Error(`${input}: core::panicking::panic_fmt not found; update the names in ${process.argv[1]}`);
}
writeFileSync(output, Buffer.concat(parts));
if (process.env.VERBOSE) for (const n of rewritten) console.log(`trap: ${n}`);
console.log(`wasm-trap-panics: ${rewritten.length} panic entry points now trap at once`);
