// Starts one of the Meteor fixtures for tests written in another language
// (the native Rust tests, tests/common/native.rs) and stops it when its
// stdin closes, so the server goes with the test process that started it
// however that process ends.
//
//   node server/meteor/fixture-server.mjs server|accounts [PORT]
//
// server: ../shared/meteor-server's own server.mjs; accounts:
// ../shared/meteor-accounts' (found as fixture.mjs finds them, their npm
// dependencies installed when missing). Prints one line once the server
// listens, {"host": "127.0.0.1:PORT", "ws": "ws://…/websocket"}, or
// "skipped: no Meteor fixture" (and exits 0) when the fixture is absent.
import {
  findFixture,
  findAccountsFixture,
  ensureFixtureDeps,
  ensureAccountsFixtureDeps,
  startOwnServer,
} from "./fixture.mjs";

const [which, port] = process.argv.slice(2);
const [find, ensureDeps] = {
  server: [findFixture, ensureFixtureDeps],
  accounts: [findAccountsFixture, ensureAccountsFixtureDeps],
}[which] ?? [];
if (!find) {
  console.error("usage: node server/meteor/fixture-server.mjs server|accounts [PORT]");
  process.exit(2);
}
const fixture = find();
if (!fixture) {
  console.log("skipped: no Meteor fixture");
  process.exit(0);
}
ensureDeps(fixture);
const app = await startOwnServer(fixture, {}, port === undefined ? undefined : Number(port));
console.log(JSON.stringify({ host: `127.0.0.1:${app.port}`, ws: app.ws }));

const stop = async () => {
  await app.stop();
  process.exit(0);
};
process.stdin.on("end", stop);
process.stdin.on("error", stop);
process.stdin.resume();
process.on("SIGTERM", stop);
