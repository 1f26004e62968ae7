// Finds the Meteor fixtures kept beside the repository — ../shared/meteor-server
// (Meteor 3.0.4's ddp-server under Node) and ../shared/meteor-accounts (the
// same with accounts-base and accounts-password) — and starts them: test-app.mjs
// on the first (or its own server.mjs), the second's own server.mjs. Used by
// tests/js/meteor*.test.mjs, bench.mjs and fixture-server.mjs (the native Rust
// tests').
import { existsSync } from "node:fs";
import { execFileSync, spawn } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/**
 * The fixture's directory, or undefined: $METEOR_FIXTURE when set (and only
 * it), else ../shared/meteor-server beside the repository (in a git
 * worktree: beside the main checkout too).
 */
export function findFixture() {
  return findShared("meteor-server", process.env.METEOR_FIXTURE);
}

/**
 * The accounts fixture's directory, or undefined: $METEOR_ACCOUNTS_FIXTURE
 * when set (and only it), else ../shared/meteor-accounts, found as above.
 */
export function findAccountsFixture() {
  const dir = findShared("meteor-accounts", process.env.METEOR_ACCOUNTS_FIXTURE);
  return dir && existsSync(path.join(dir, "server.mjs")) ? dir : undefined;
}

function findShared(name, fromEnv) {
  if (fromEnv) return present(path.resolve(fromEnv));
  const candidates = [path.resolve(repo, "../shared", name)];
  try {
    const common = execFileSync("git", ["rev-parse", "--path-format=absolute", "--git-common-dir"], { cwd: repo, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    candidates.push(path.resolve(path.dirname(common.trim()), "../shared", name));
  } catch {
    // not a git checkout: the first place only
  }
  return candidates.find(present);
}

function present(dir) {
  return existsSync(path.join(dir, "shim.js")) ? dir : undefined;
}

/**
 * Installs the accounts fixture's npm dependencies if they are missing, as
 * its run.sh does (bcrypt is built from source against the local Node headers).
 */
export function ensureAccountsFixtureDeps(fixture) {
  const ready = ["bcrypt/lib/binding/napi-v3/bcrypt_lib.node", "nodemailer", "sockjs", "@meteorjs/reify"];
  if (ready.every((m) => existsSync(path.join(fixture, "node_modules", m)))) return;
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error"], {
    cwd: fixture,
    stdio: ["ignore", "inherit", "inherit"],
    env: { ...process.env, npm_config_nodedir: process.env.npm_config_nodedir ?? "/usr" },
  });
}

/** Installs the fixture's npm dependencies if they are missing (as its run.sh does). */
export function ensureFixtureDeps(fixture) {
  const needed = ["sockjs", "@meteorjs/reify", "ddp.js", "ws"];
  if (needed.every((m) => existsSync(path.join(fixture, "node_modules", m)))) return;
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: fixture, stdio: ["ignore", "inherit", "inherit"] });
}

function portFree(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

/** A free port in [from, to], or an error. */
export async function freePort(from = 4520, to = 4529) {
  for (let p = from; p <= to; p++) if (await portFree(p)) return p;
  throw new Error(`no free port in ${from}-${to}`);
}

/**
 * Starts test-app.mjs on a free port of 4520-4529 with `env` added; resolves
 * `{ port, base, ws, stop() }` once it listens.
 */
export async function startApp(fixture, env = {}) {
  const port = await freePort();
  return startNode(path.join(repo, "server/meteor/test-app.mjs"), port, { METEOR_FIXTURE: fixture, ...env });
}

/**
 * Starts a fixture's own server.mjs (either fixture's) on `port` (by default
 * a free port of 4530-4539); resolves `{ port, base, ws, stop() }` once it
 * listens.
 */
export async function startOwnServer(fixture, env = {}, port = undefined) {
  port ??= await freePort(4530, 4539);
  return startNode(path.join(fixture, "server.mjs"), port, { HOST: "127.0.0.1", ...env }, fixture);
}

async function startNode(script, port, env, cwd) {
  const child = spawn(process.execPath, [script], {
    cwd,
    env: { ...process.env, PORT: String(port), ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const exited = new Promise((resolve) => child.once("exit", resolve));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${path.basename(script)} did not start:\n${output}`)), 20000);
    const onData = (d) => {
      output += d;
      if (output.includes("listening")) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", (d) => (output += d));
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${path.basename(script)} exited (${code}):\n${output}`));
    });
  });
  child.stdout.removeAllListeners("data");
  child.stdout.resume();
  const base = `http://127.0.0.1:${port}`;
  return {
    port,
    base,
    ws: `ws://127.0.0.1:${port}/websocket`,
    output: () => output,
    async stop() {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        await exited;
      }
    },
  };
}

/**
 * Starts a throw-away redis-server (no persistence) on a free port of
 * 4520-4529; resolves `{ url, stop() }`, or undefined when there is no
 * redis-server or it does not start.
 */
export async function startRedis() {
  let bin;
  try {
    bin = execFileSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" }).trim();
  } catch {
    return undefined;
  }
  const port = await freePort();
  const child = spawn(bin, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const started = await new Promise((resolve) => {
    let out = "";
    const timer = setTimeout(() => resolve(false), 5000);
    child.stdout.on("data", (d) => {
      out += d;
      if (out.includes("Ready to accept connections")) {
        clearTimeout(timer);
        resolve(true);
      }
    });
    child.once("error", () => resolve(false));
    exited.then(() => resolve(false));
  });
  child.stdout.removeAllListeners("data");
  child.stdout.resume();
  child.stderr.resume();
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      await exited;
    }
  };
  if (!started) {
    await stop();
    return undefined;
  }
  return { url: `redis://127.0.0.1:${port}`, stop };
}
