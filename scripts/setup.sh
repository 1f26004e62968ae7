#!/usr/bin/env bash
# Installs whatever this project needs and is missing. Idempotent: every step
# checks first and skips what is already there. Safe to run again and again.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*" >&2; }

# The wasm-bindgen version Cargo.lock resolved: the CLI must match it to the
# letter. (Cargo.toml asks for a caret range, so an app that depends on the
# library is free to pick its own 0.2.x; our own builds use the lock file's.)
WB_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
[ -n "$WB_VERSION" ] || { echo "cannot read the wasm-bindgen version from Cargo.lock" >&2; exit 1; }

export PATH="$HOME/.cargo/bin:$PATH"

# 1. Debian packages: Chromium + its driver for the browser tests. (wasm-opt
#    comes from npm's binaryen, step 5: Debian's is too old for wasm-bindgen's
#    externref table.)
need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
# A C++ toolchain: the Meteor accounts fixture's bcrypt is built from source (step 6).
command -v g++ >/dev/null 2>&1 || need_apt+=(g++)
command -v make >/dev/null 2>&1 || need_apt+=(make)
if ((${#need_apt[@]})); then
  log "apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# 1b. Redis, for the backplane test of the Meteor rooms module (server/meteor/).
#     Optional: without it that test says it skipped.
if ! command -v redis-server >/dev/null 2>&1; then
  log "apt-get install redis-server"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null; } \
    || log "redis-server could not be installed: the Redis backplane test will be skipped"
fi

# 1c. clippy and rustfmt, for scripts/check.sh (in rustup's default profile;
#     a minimal toolchain lacks them).
for component in clippy rustfmt; do
  if ! rustup component list --installed | grep -q "^$component-"; then
    log "rustup component add $component"
    rustup component add "$component"
  fi
done

# 2. The wasm32 target.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# 3. wasm-pack (from crates.io: the npm package downloads a binary and fails offline).
if ! command -v wasm-pack >/dev/null 2>&1; then
  log "cargo install wasm-pack (a few minutes)"
  cargo install --locked wasm-pack || cargo install wasm-pack
fi

# 4. wasm-bindgen-cli at exactly the pinned version.
if ! wasm-bindgen --version 2>/dev/null | grep -qx "wasm-bindgen $WB_VERSION"; then
  log "cargo install wasm-bindgen-cli $WB_VERSION (a few minutes)"
  # --locked can name a dependency version the registry mirror lacks; fall back.
  cargo install --locked --force wasm-bindgen-cli --version "$WB_VERSION" \
    || cargo install --force wasm-bindgen-cli --version "$WB_VERSION"
fi

# 4b. twiggy, for the size breakdown scripts/build-pkg.sh prints.
if ! command -v twiggy >/dev/null 2>&1; then
  log "cargo install twiggy (a few minutes)"
  cargo install --locked twiggy || cargo install twiggy
fi

# 5. npm dev packages (playwright-core for the JS-surface tests, binaryen for
#    wasm-opt), exactly as package-lock.json pins them.
if [ -f package.json ]; then
  if [ ! -x node_modules/.bin/wasm-opt ] || [ ! -d node_modules/playwright-core ] \
     || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    log "npm ci"
    npm ci --no-audit --no-fund --loglevel=error
  fi
fi
# 6. The Meteor fixtures' npm dependencies (../shared/meteor-server and
#    ../shared/meteor-accounts, when present): the native tests run Meteor's
#    own id generator through its shim before any test starts the fixture
#    (which would install them); the accounts fixture builds bcrypt.
if [ -f server/meteor/fixture.mjs ]; then
  node --input-type=module -e '
    import { findFixture, ensureFixtureDeps, findAccountsFixture, ensureAccountsFixtureDeps } from "./server/meteor/fixture.mjs";
    const dir = findFixture();
    if (dir) ensureFixtureDeps(dir);
    else console.error("[setup] no Meteor fixture beside the repository: its tests will say they skipped");
    const accounts = findAccountsFixture();
    if (accounts) ensureAccountsFixtureDeps(accounts);
    else console.error("[setup] no Meteor accounts fixture beside the repository: its tests will say they skipped");
  '
fi
log "all tools present"
