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

# No snippet of an earlier build may linger (the size check counts them all).
rm -rf "$out_dir/snippets"
args=(build --mode no-install --release --target "$target" --out-dir "$out_dir" --out-name "$out_name")
[ -n "$scope" ] && args+=(--scope "$scope")
cargo_args=()
[ -n "$features" ] && cargo_args+=(--features "${features// /,}")
wasm-pack --log-level warn "${args[@]}" -- "${cargo_args[@]}"

# The JS glue (and the inline snippets it imports) minified, as the JS
# clients it is compared with are shipped: its doc comments stay in the .d.ts.
# --keep-names keeps the classes' names (DDPConnection, not a letter) for
# whoever inspects them in a console (the glue's; the snippets export no class).
esbuild=node_modules/.bin/esbuild
[ -x "$esbuild" ] || { echo "missing $esbuild: run scripts/setup.sh" >&2; exit 1; }
# (PROFILING=1 leaves them as written, so a CPU profile names their lines.)
[ "${PROFILING:-0}" = 1 ] || for js in "$out_dir/$out_name.js" $(find "$out_dir/snippets" -name '*.js' 2>/dev/null); do
  head -n1 "$js" | grep '^/\* @ts-self-types' > "$js.min" || true
  keep=(); [ "$js" = "$out_dir/$out_name.js" ] && keep=(--keep-names)
  "$esbuild" "$js" --minify "${keep[@]}" --target=es2020 --format=esm --log-level=warning >> "$js.min"
  mv "$js.min" "$js"
done

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
# shellcheck disable=SC2086
"$wasm_opt" $wasm_opt_flags "$wasm" -o "$wasm.opt"
mv "$wasm.opt" "$wasm"
raw=$(stat -c %s "$wasm")
gz=$(gzip -9 -c "$wasm" | wc -c)
js_gz=$(cat "$out_dir/$out_name.js" | gzip -9 | wc -c)
snippets_gz=0
for js in $(find "$out_dir/snippets" -name '*.js' 2>/dev/null); do
  snippets_gz=$((snippets_gz + $(gzip -9 -c "$js" | wc -c)))
done
js_gz=$((js_gz + snippets_gz))
echo "package: $out_dir/ — ${out_name}_bg.wasm ${raw} bytes, ${gz} bytes gzipped; JS glue (minified, with its snippets) ${js_gz} bytes gzipped; total $((gz + js_gz)) bytes gzipped"
