#!/usr/bin/env bash
# Writes a section of docs/benchmarks.md: `bench-section.sh MARKER FILE`
# replaces what is between `<!-- MARKER -->` and `<!-- /MARKER -->` with
# FILE (which holds both markers), or appends FILE when the markers are not
# there yet. Used by the benchmark scripts that own a section.
set -euo pipefail
cd "$(dirname "$0")/.."
marker=$1
part=$2
doc=docs/benchmarks.md
if grep -q "<!-- $marker -->" "$doc"; then
  awk -v part="$part" -v opening="<!-- $marker -->" -v closing="<!-- /$marker -->" '
    $0 == opening { while ((getline line < part) > 0) print line; skip = 1; next }
    $0 == closing { skip = 0; next }
    !skip { print }' "$doc" > "$doc.new" && mv "$doc.new" "$doc"
else
  { echo; cat "$part"; } >> "$doc"
fi
echo "written to $doc"
