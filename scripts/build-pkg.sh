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
offline_features=$(read_setting offline_features)
offline_out_name=$(read_setting offline_out_name)
offline_entry=$(read_setting offline_entry)
core_features=$(read_setting core_features)
core_out_name=$(read_setting core_out_name)
core_entry=$(read_setting core_entry)
wasm_opt_flags=$(read_setting wasm_opt)

esbuild=node_modules/.bin/esbuild
tsc=node_modules/.bin/tsc
[ -x "$esbuild" ] && [ -x "$tsc" ] || { echo "missing $esbuild or $tsc: run scripts/setup.sh" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# No snippet of an earlier build may linger.
rm -rf "$out_dir/snippets"
# What `wasm-pack build` did, with one difference: the wasm is built as a
# cdylib alone (`cargo rustc --crate-type cdylib`). Cargo never runs LTO on
# a library that also makes an rlib (Cargo.toml's crate-type, which the
# tests and Rust apps need), so `cargo build` (and wasm-pack) silently
# dropped the release profile's `lto = true` from the package: measured
# -14.5 KB gzipped with it. Then wasm-bindgen, as wasm-pack ran it, and the
# package's files (package.json from Cargo.toml, the README). Two builds of
# the same crate: the core (the package's default export, cargo features
# `features`) and the offline part (`ddp-live/offline`, `offline_features`),
# each with its wasm-bindgen glue; the offline part's is built aside.
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
build "$tmp/offline-pkg" "$offline_out_name" "$offline_features"
mv "$tmp/offline-pkg/${offline_out_name}_bg.wasm" "$out_dir/"
# The core part (`ddp-live/core`: no live queries, accounts or rooms).
build "$tmp/core-pkg" "$core_out_name" "$core_features"
mv "$tmp/core-pkg/${core_out_name}_bg.wasm" "$out_dir/"

# The JavaScript API is hand-written TypeScript (ts/ddp_live.ts) over the
# wasm's narrow ABI (src/js/mod.rs): tsc --strict type-checks it and writes
# the package's .d.ts from it; esbuild bundles it with the wasm-bindgen glue
# (and the glue's inline snippets) into one ES module, minified as the JS
# clients it is compared with are shipped. The glue loads the .wasm beside
# the module (import.meta.url), so `--target web` and bundlers work as before.
# One source, bundled twice: over the core's glue (OFFLINE false: the
# branches that need the offline part's exports are dropped) and over the
# offline part's (OFFLINE true).
mkdir -p "$tmp/core" "$tmp/offline" "$tmp/corepart"
mv "$out_dir/$out_name.js" "$tmp/core/glue.js"
mv "$out_dir/$out_name.d.ts" "$tmp/core/glue.d.ts"
[ -d "$out_dir/snippets" ] && mv "$out_dir/snippets" "$tmp/core/"
mv "$tmp/offline-pkg/$offline_out_name.js" "$tmp/offline/glue.js"
mv "$tmp/offline-pkg/$offline_out_name.d.ts" "$tmp/offline/glue.d.ts"
[ -d "$tmp/offline-pkg/snippets" ] && mv "$tmp/offline-pkg/snippets" "$tmp/offline/"
mv "$tmp/core-pkg/$core_out_name.js" "$tmp/corepart/glue.js"
mv "$tmp/core-pkg/$core_out_name.d.ts" "$tmp/corepart/glue.d.ts"
[ -d "$tmp/core-pkg/snippets" ] && mv "$tmp/core-pkg/snippets" "$tmp/corepart/"
cp ts/ddp_live.ts "$tmp/corepart/$out_name.ts"
cp ts/ddp_live.ts "$tmp/core/$out_name.ts"
cp ts/ddp_live.ts "$tmp/offline/$out_name.ts"
# Type-checked over the offline part's glue (its exports are the core's
# and more); the .d.ts is the same for both entries.
"$tsc" --strict --declaration --emitDeclarationOnly --stripInternal --removeComments false \
  --target es2022 --module es2022 --moduleResolution bundler --lib es2022,dom --skipLibCheck \
  --outDir "$tmp/types" "$tmp/offline/$out_name.ts"
cp "$tmp/types/$out_name.d.ts" "$out_dir/$out_name.d.ts"
printf '%s\n' "// ddp-live/offline: the same API as \"ddp-live\" (its types are these), over the wasm with persist and shareAcrossTabs." \
  "export * from \"./$out_name.js\";" "export { default } from \"./$out_name.js\";" > "$out_dir/$offline_entry.d.ts"
printf '%s\n' "// ddp-live/core: the API of \"ddp-live\" (its types are these) without live queries, accounts and rooms, which throw a DDPError \"part-not-loaded\" here." \
  "export * from \"./$out_name.js\";" "export { default } from \"./$out_name.js\";" > "$out_dir/$core_entry.d.ts"
# (PROFILING=1 leaves it unminified, so a CPU profile names its lines.)
minify=(--minify); [ "${PROFILING:-0}" = 1 ] && minify=()
"$esbuild" "$tmp/core/$out_name.ts" --bundle "${minify[@]}" --define:OFFLINE=false --define:FULL=true --target=es2020 --format=esm --log-level=warning --outfile="$out_dir/$out_name.js"
# (wasm-bindgen's glue of the offline part lists one inline snippet twice,
# the same module under the same key: esbuild's warning about it is noise.)
"$esbuild" "$tmp/offline/$out_name.ts" --bundle "${minify[@]}" --define:OFFLINE=true --define:FULL=true --target=es2020 --format=esm --log-level=warning \
  --log-override:duplicate-object-key=silent --outfile="$out_dir/$offline_entry.js"
"$esbuild" "$tmp/corepart/$out_name.ts" --bundle "${minify[@]}" --define:OFFLINE=false --define:FULL=false --target=es2020 --format=esm --log-level=warning \
  --outfile="$out_dir/$core_entry.js"
# One module per entry now: no snippets to ship. The package's entries:
# "." the core, "./offline" the offline part (and their wasm, for apps that
# hand init() the file's URL from their bundler).
node -e '
  const fs = require("fs"), [p, name, offName, entry, coreName, coreEntry] = process.argv.slice(1), j = JSON.parse(fs.readFileSync(p, "utf8"));
  j.files = j.files.filter((f) => f !== "snippets");
  for (const f of [`${offName}_bg.wasm`, `${entry}.js`, `${entry}.d.ts`, `${coreName}_bg.wasm`, `${coreEntry}.js`, `${coreEntry}.d.ts`]) if (!j.files.includes(f)) j.files.push(f);
  j.exports = {
    ".": { types: `./${name}.d.ts`, default: `./${name}.js` },
    [`./${entry}`]: { types: `./${entry}.d.ts`, default: `./${entry}.js` },
    [`./${coreEntry}`]: { types: `./${coreEntry}.d.ts`, default: `./${coreEntry}.js` },
    [`./${name}_bg.wasm`]: `./${name}_bg.wasm`,
    [`./${offName}_bg.wasm`]: `./${offName}_bg.wasm`,
    [`./${coreName}_bg.wasm`]: `./${coreName}_bg.wasm`,
    "./package.json": "./package.json",
  };
  j.sideEffects = false;
  fs.writeFileSync(p, JSON.stringify(j, null, 2) + "\n");
' "$out_dir/package.json" "$out_name" "$offline_out_name" "$offline_entry" "$core_out_name" "$core_entry"

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
offline_wasm="$out_dir/${offline_out_name}_bg.wasm"
core_wasm="$out_dir/${core_out_name}_bg.wasm"
for f in "$wasm" "$offline_wasm" "$core_wasm"; do
  # Panics trap at once (stable Rust's panic_immediate_abort; see the
  # script): wasm-opt then drops the panic machinery and what only it formats.
  node scripts/wasm-trap-panics.mjs "$f"
  # shellcheck disable=SC2086
  "$wasm_opt" $wasm_opt_flags "$f" -o "$f.opt"
  mv "$f.opt" "$f"
done
raw=$(stat -c %s "$wasm")
gz=$(gzip -9 -c "$wasm" | wc -c)
js_gz=$(gzip -9 -c "$out_dir/$out_name.js" | wc -c)
echo "package: $out_dir/ — ${out_name}_bg.wasm ${raw} bytes, ${gz} bytes gzipped; JS API (minified) ${js_gz} bytes gzipped; total $((gz + js_gz)) bytes gzipped"
off_raw=$(stat -c %s "$offline_wasm")
off_gz=$(gzip -9 -c "$offline_wasm" | wc -c)
off_js_gz=$(gzip -9 -c "$out_dir/$offline_entry.js" | wc -c)
echo "offline part (ddp-live/$offline_entry, loaded instead of the default export): ${offline_out_name}_bg.wasm ${off_raw} bytes, ${off_gz} bytes gzipped; $offline_entry.js ${off_js_gz} bytes gzipped; total $((off_gz + off_js_gz)) bytes gzipped, $((off_gz + off_js_gz - gz - js_gz)) bytes more than the default export"
core_gz=$(gzip -9 -c "$core_wasm" | wc -c)
core_js_gz=$(gzip -9 -c "$out_dir/$core_entry.js" | wc -c)
echo "core part (ddp-live/$core_entry: no live queries, accounts or rooms): ${core_out_name}_bg.wasm $(stat -c %s "$core_wasm") bytes, ${core_gz} bytes gzipped; $core_entry.js ${core_js_gz} bytes gzipped; total $((core_gz + core_js_gz)) bytes gzipped"
