#!/usr/bin/env bash
# Builds the npm package with the settings in wasm-pack.toml (which only this
# script reads), optimises the wasm with wasm-opt and prints its size.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

read_setting() {
  python3 -c 'import sys, tomllib, json; v = tomllib.load(open("wasm-pack.toml", "rb"))[sys.argv[1]]; print(" ".join(v) if isinstance(v, list) else v)' "$1"
}
target=$(read_setting target)
out_dir=$(read_setting out_dir)
out_name=$(read_setting out_name)
scope=$(read_setting scope)
features=$(read_setting features)
wasm_opt_flags=$(read_setting wasm_opt)

# No snippet of an earlier build may linger.
rm -rf "$out_dir/snippets"
# What `wasm-pack build` did, with one difference: the wasm is built as a
# cdylib alone (`cargo rustc --crate-type cdylib`). Cargo never runs LTO on
# a library that also makes an rlib (Cargo.toml's crate-type, which the
# tests and Rust apps need), so `cargo build` (and wasm-pack) silently
# dropped the release profile's `lto = true` from the package: measured
# -14.5 KB gzipped with it. Then wasm-bindgen, as wasm-pack ran it, and the
# package's files (package.json from Cargo.toml, the README).
target_dir=$(cargo metadata --no-deps --format-version 1 | python3 -c 'import sys, json; print(json.load(sys.stdin)["target_directory"])')
build() { # <out dir> <out name> <features>
  local cargo_args=(rustc --quiet --release --lib --crate-type cdylib --target wasm32-unknown-unknown)
  [ -n "$3" ] && cargo_args+=(--features "${3// /,}")
  cargo "${cargo_args[@]}"
  wasm-bindgen --target "$target" --out-dir "$1" --out-name "$2" "$target_dir/wasm32-unknown-unknown/release/ddp_live.wasm"
}
build "$out_dir" "$out_name" "$features"
cp pkg-README.md "$out_dir/README.md"
printf '*\n' > "$out_dir/.gitignore"
cargo metadata --no-deps --format-version 1 | node -e '
  const fs = require("fs"), [out, name, scope] = process.argv.slice(1);
  const m = JSON.parse(fs.readFileSync(0, "utf8")).packages.find((p) => p.name === "ddp-live");
  const j = {
    name: scope ? `@${scope}/${m.name}` : m.name,
    type: "module",
    description: m.description,
    version: m.version,
    license: m.license,
    repository: { type: "git", url: m.repository },
    files: [`${name}_bg.wasm`, `${name}.js`, `${name}.d.ts`],
    main: `${name}.js`,
    types: `${name}.d.ts`,
    sideEffects: ["./snippets/*"],
    keywords: m.keywords,
  };
  fs.writeFileSync(`${out}/package.json`, JSON.stringify(j, null, 2) + "\n");
' "$out_dir" "$out_name" "$scope"

# The JavaScript API is hand-written TypeScript (ts/ddp_live.ts) over the
# wasm's narrow ABI (src/js/mod.rs): tsc --strict type-checks it and writes
# the package's .d.ts from it; esbuild bundles it with the wasm-bindgen glue
# (and the glue's inline snippets) into one ES module, minified as the JS
# clients it is compared with are shipped. The glue loads the .wasm beside
# the module (import.meta.url), so `--target web` and bundlers work as before.
esbuild=node_modules/.bin/esbuild
tsc=node_modules/.bin/tsc
[ -x "$esbuild" ] && [ -x "$tsc" ] || { echo "missing $esbuild or $tsc: run scripts/setup.sh" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mv "$out_dir/$out_name.js" "$tmp/glue.js"
mv "$out_dir/$out_name.d.ts" "$tmp/glue.d.ts"
[ -d "$out_dir/snippets" ] && mv "$out_dir/snippets" "$tmp/"
cp ts/ddp_live.ts "$tmp/$out_name.ts"
"$tsc" --strict --declaration --emitDeclarationOnly --stripInternal --removeComments false \
  --target es2022 --module es2022 --moduleResolution bundler --lib es2022,dom --skipLibCheck \
  --outDir "$tmp/types" "$tmp/$out_name.ts"
cp "$tmp/types/$out_name.d.ts" "$out_dir/$out_name.d.ts"
# (PROFILING=1 leaves it unminified, so a CPU profile names its lines.)
minify=(--minify); [ "${PROFILING:-0}" = 1 ] && minify=()
"$esbuild" "$tmp/$out_name.ts" --bundle "${minify[@]}" --target=es2020 --format=esm --log-level=warning --outfile="$out_dir/$out_name.js"
# One module now: no snippets to ship.
node -e '
  const fs = require("fs"), p = process.argv[1], j = JSON.parse(fs.readFileSync(p, "utf8"));
  j.files = j.files.filter((f) => f !== "snippets");
  j.sideEffects = false;
  fs.writeFileSync(p, JSON.stringify(j, null, 2) + "\n");
' "$out_dir/package.json"

wasm="$out_dir/${out_name}_bg.wasm"
# binaryen from npm (version pinned in package.json): Debian's wasm-opt 108
# corrupts the externref table that current wasm-bindgen emits (the module
# then fails in the browser with "WebAssembly.Table.set(): Argument 1 is
# invalid for table").
wasm_opt=node_modules/.bin/wasm-opt
[ -x "$wasm_opt" ] || { echo "missing $wasm_opt: run scripts/setup.sh" >&2; exit 1; }
# PROFILING=1 keeps function names (for tests/js/bench/profile.mjs); the
# size then printed is not the package's.
if [ "${PROFILING:-0}" = 1 ]; then
  wasm_opt_flags="${wasm_opt_flags//--strip-debug/} -g"
fi
# What the bytes are made of (twiggy, installed by scripts/setup.sh), read
# before wasm-opt while the function names are still there: the largest
# items by retained size. Sizes are before optimisation; the totals below
# are the package's.
if command -v twiggy >/dev/null 2>&1 && [ "${SIZE_BREAKDOWN:-1}" = 1 ]; then
  echo "largest items (twiggy top --retained, before wasm-opt):"
  twiggy top --retained -n 40 "$wasm" 2>/dev/null \
    | grep -vE "function names|custom section|table\[|elem\[|Σ|\.\.\. and" | sed -n '3,17p' | cut -c1-150
fi
# Panics trap at once (stable Rust's panic_immediate_abort; see the script):
# wasm-opt then drops the panic machinery and what only it formats.
node scripts/wasm-trap-panics.mjs "$wasm"
# shellcheck disable=SC2086
"$wasm_opt" $wasm_opt_flags "$wasm" -o "$wasm.opt"
mv "$wasm.opt" "$wasm"
raw=$(stat -c %s "$wasm")
gz=$(gzip -9 -c "$wasm" | wc -c)
js_gz=$(gzip -9 -c "$out_dir/$out_name.js" | wc -c)
echo "package: $out_dir/ — ${out_name}_bg.wasm ${raw} bytes, ${gz} bytes gzipped; JS API (minified) ${js_gz} bytes gzipped; total $((gz + js_gz)) bytes gzipped"
