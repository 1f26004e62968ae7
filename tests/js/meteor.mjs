// Meteor's own ddp-server (the fixture in ../shared/meteor-server, beside
// the repository) for interoperability tests, started with its own
// server.mjs. When the fixture is absent the tests that need it print
// "skipped: no Meteor fixture" and skip.
import { findFixture, ensureFixtureDeps, startOwnServer } from "../../server/meteor/fixture.mjs";

export const fixture = findFixture();
export const hasFixture = fixture !== undefined;

/** Starts the fixture's server.mjs on a free port of 4530-4539: `{ url, base, control, stop }`, or null without the fixture. */
export async function startMeteor(env = {}) {
  if (!hasFixture) {
    console.log("skipped: no Meteor fixture");
    return null;
  }
  ensureFixtureDeps(fixture);
  const app = await startOwnServer(fixture, env);
  return {
    url: app.ws,
    base: app.base,
    control: async (action) => {
      const r = await fetch(`${app.base}/control/${action}`);
      if (!r.ok) throw new Error(`meteor control ${action}: ${r.status}`);
      return r.json();
    },
    stop: () => app.stop(),
  };
}
