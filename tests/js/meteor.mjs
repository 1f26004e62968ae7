// Meteor's own ddp-server (the fixture in ../shared/meteor-server, beside
// the repository) for interoperability tests. When the fixture is absent the
// tests that need it print "skipped: no Meteor fixture" and skip.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const fixture = process.env.METEOR_FIXTURE ?? resolve(root, "../shared/meteor-server");
export const hasFixture = existsSync(resolve(fixture, "run.sh")) && existsSync(resolve(fixture, "server.mjs"));

/**
 * Starts the fixture's server on `port` (its run.sh installs its npm
 * dependencies on first use) and returns `{ url, base, stop }`, or null
 * when the fixture is absent.
 */
export async function startMeteor(port, env = {}) {
  if (!hasFixture) {
    console.log("skipped: no Meteor fixture");
    return null;
  }
  const pid = await new Promise((ok, fail) => {
    const p = spawn("bash", [resolve(fixture, "run.sh")], {
      cwd: fixture,
      env: { ...process.env, PORT: String(port), ...env },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    p.stdout.on("data", (d) => (out += d));
    p.on("exit", (code) => (code === 0 ? ok(Number(out.trim().split("\n").pop())) : fail(new Error(`run.sh exited ${code}`))));
  });
  const base = `http://127.0.0.1:${port}`;
  return {
    url: `ws://127.0.0.1:${port}/websocket`,
    base,
    control: async (action) => {
      const r = await fetch(`${base}/control/${action}`);
      if (!r.ok) throw new Error(`meteor control ${action}: ${r.status}`);
      return r.json();
    },
    stop: () => {
      try { process.kill(pid); } catch { /* already gone */ }
    },
  };
}
