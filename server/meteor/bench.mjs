// Measures a broadcast to a large room on Meteor's own ddp-server:
// N raw-WebSocket DDP clients join one room, one of them sends M messages of
// type "all", and we print, per delivery path, the server's time inside the
// broadcast (median, p95) and the time until all N clients had each message.
// It prints figures and asserts nothing.
//
//   node server/meteor/bench.mjs            # N=1000, M=30
//   BENCH_MEMBERS=200 BENCH_MESSAGES=10 BENCH_MODES=module,sketch node server/meteor/bench.mjs
//
// modes: module (rooms.js: one frame serialised per message, written to
// every socket), added (rooms.js with lowLevelSend: false: Meteor's public
// `added` per member, no merge box), sketch (the old docs sketch: Meteor's
// default merge box, `added` + `removed` per member).
import { createRequire } from "node:module";
import path from "node:path";
import { findFixture, ensureFixtureDeps, startApp } from "./fixture.mjs";

const fixture = findFixture();
if (!fixture) {
  console.log("skipped: no Meteor fixture");
  process.exit(0);
}
ensureFixtureDeps(fixture);
const WebSocket = createRequire(path.join(fixture, "package.json"))("ws");

const N = Number(process.env.BENCH_MEMBERS ?? 1000);
const M = Number(process.env.BENCH_MESSAGES ?? 30);
const modes = (process.env.BENCH_MODES ?? "module,added,sketch").split(",");
const payload = { text: "x".repeat(100), n: 1 };

function member(url, inbox) {
  const ws = new WebSocket(url);
  let seq = 0;
  const calls = new Map();
  const m = { ws, received: 0, onMessage: null };
  ws.on("message", (raw) => {
    const msg = JSON.parse(raw);
    if (msg.msg === "added") {
      m.received++;
      m.onMessage?.();
    } else if (msg.msg === "result") {
      calls.get(msg.id)?.(msg);
      calls.delete(msg.id);
    } else if (msg.msg === "ping") ws.send('{"msg":"pong"}');
  });
  m.call = (method, ...params) =>
    new Promise((resolve) => {
      const id = String(++seq);
      calls.set(id, resolve);
      ws.send(JSON.stringify({ msg: "method", id, method, params }));
    });
  m.ready = new Promise((resolve, reject) => {
    ws.once("error", reject);
    ws.once("open", () => {
      ws.send(JSON.stringify({ msg: "connect", version: "1", support: ["1"] }));
      ws.send(JSON.stringify({ msg: "sub", id: "inbox", name: inbox, params: [] }));
      resolve();
    });
  });
  return m;
}

const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};

async function run(mode) {
  const env = { ROOMS_LOW_LEVEL_SEND: mode === "added" ? "0" : "1", ROOMS_SKETCH: mode === "sketch" ? "1" : "0" };
  const app = await startApp(fixture, env);
  try {
    const inbox = mode === "sketch" ? "sketch.inbox" : "rooms.inbox";
    const members = [];
    for (let i = 0; i < N; i += 100) {
      const batch = Array.from({ length: Math.min(100, N - i) }, () => member(app.ws, inbox));
      await Promise.all(batch.map((m) => m.ready));
      await Promise.all(batch.map((m) => m.call("rooms.join", "big", {})));
      members.push(...batch);
    }
    const sender = members[0];
    await fetch(`${app.base}/control/stats`); // clears the timings
    const endToEnd = [];
    for (let k = 0; k < M; k++) {
      const target = k + 1;
      const t0 = performance.now();
      const all = new Promise((resolve) => {
        let left = members.filter((m) => m.received < target).length;
        for (const m of members) {
          m.onMessage = () => {
            if (m.received === target && --left === 0) resolve();
          };
        }
      });
      if (mode === "sketch") await sender.call("sketch.send", "big", payload);
      else await sender.call("rooms.send", "big", payload, "all");
      await all;
      endToEnd.push(performance.now() - t0);
    }
    const stats = await (await fetch(`${app.base}/control/stats`)).json();
    const server = stats.timings;
    for (const m of members) m.ws.terminate();
    return { mode, server, endToEnd, serialised: stats.serialised };
  } finally {
    await app.stop();
  }
}

console.log(`broadcast to a room of ${N} members (raw WebSocket DDP clients in one Node process), ${M} messages, Meteor ${"3.0.4"} ddp-server`);
console.log("mode     server ms/broadcast (median, p95)   all members have it, ms (median, p95)   frames serialised");
for (const mode of modes) {
  const r = await run(mode);
  const f = (x) => x.toFixed(2).padStart(7);
  const frames = Object.entries(r.serialised).map(([k, v]) => `${k}: ${v}`).join(", ");
  console.log(`${mode.padEnd(8)} ${f(quantile(r.server, 0.5))} ${f(quantile(r.server, 0.95))}                       ${f(quantile(r.endToEnd, 0.5))} ${f(quantile(r.endToEnd, 0.95))}                   ${frames}`);
}
