// Bundled by scripts/bench.sh (esbuild) so the benchmark page can load ddp.js.
import * as m from "ddp.js";
window.DDPjs = m.default?.default ?? m.default ?? m;
