// Meteor's own ddp-server (the fixture in ../shared/meteor-server, beside
// the repository) for interoperability tests, started with its own
// server.mjs. When the fixture is absent the tests that need it print
// "skipped: no Meteor fixture" and skip.
import { spawn } from "node:child_process";
import path from "node:path";
import { findFixture, ensureFixtureDeps, freePort } from "../../server/meteor/fixture.mjs";

export const fixture = findFixture();
export const hasFixture = fixture !== undefined;

/** Starts the fixture's server.mjs on a free port of 4530-4539: `{ url, base, control, stop }`, or null without the fixture. */
export async function startMeteor(env = {}) {
  if (!hasFixture) {
    console.log("skipped: no Meteor fixture");
    return null;
  }
  ensureFixtureDeps(fixture);
  const port = await freePort(4530, 4539);
  const child = spawn(process.execPath, [path.join(fixture, "server.mjs")], {
    cwd: fixture,
    env: { ...process.env, PORT: String(port), ...env },
    stdio: "ignore",
  });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; !(await fetch(`${base}/sockjs/info`).then((r) => r.ok, () => false)); i++) {
    if (i > 200 || child.exitCode !== null) throw new Error(`Meteor's server did not start on ${port}`);
    await new Promise((ok) => setTimeout(ok, 50));
  }
  return {
    url: `ws://127.0.0.1:${port}/websocket`,
    base,
    control: async (action) => {
      const r = await fetch(`${base}/control/${action}`);
      if (!r.ok) throw new Error(`meteor control ${action}: ${r.status}`);
      return r.json();
    },
    stop: () => child.kill(),
  };
}
