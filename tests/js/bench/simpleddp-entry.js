// Bundled by scripts/bench.sh (esbuild) so the benchmark page can load simpleddp.
import * as m from "simpleddp";
window.simpleDDP = m.default?.default ?? m.default ?? m;
