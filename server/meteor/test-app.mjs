// A Meteor app for the tests: Meteor 3.0.4's own ddp-server (the fixture
// ../shared/meteor-server, loaded through its shim.js) with our rooms module
// installed, serving the npm package and the JS test page like an app serves
// its client.
//
//   METEOR_FIXTURE=../shared/meteor-server PORT=4520 node server/meteor/test-app.mjs
//
// env: METEOR_FIXTURE (required), PORT (4520), HOST (127.0.0.1),
// ROOMS_LOW_LEVEL_SEND=0 (Meteor's public `added` per member),
// ROOMS_REDIS_URL (a Redis pub/sub backplane; needs the `redis` npm package).
//
// The rooms behave like the test server's chat (tests/server/src/rooms.rs):
// a message goes to the others in the room; type "echo" back to the sender
// only; type "all" to everybody; a join whose auth is { reject: reason } is
// rejected with that reason; a message of type "forbidden" is rejected.
//
// Control endpoints (JSON): /control/stats?room=R (members of R, sessions,
// the rooms log, frames serialised per collection), /control/drop (destroys
// every upgraded TCP socket: clients see 1006).
import { createRequire } from "node:module";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { RoomsServer, redisBackplane } from "./rooms.js";

const fixture = process.env.METEOR_FIXTURE;
if (!fixture) throw new Error("METEOR_FIXTURE (the meteor-server fixture directory) is needed");
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const M = createRequire(path.resolve(fixture, "server.mjs"))("./shim.js");
const { Meteor, WebApp, DDPCommon } = M;

// Counts the frames Meteor serialises, per collection (what a broadcast costs).
const serialised = {};
const stringify = DDPCommon.stringifyDDP;
DDPCommon.stringifyDDP = (msg) => {
  if (msg && msg.collection) serialised[msg.collection] = (serialised[msg.collection] ?? 0) + 1;
  return stringify(msg);
};

let backplane;
if (process.env.ROOMS_REDIS_URL) {
  const { createClient } = await import("redis");
  const pub = createClient({ url: process.env.ROOMS_REDIS_URL });
  const sub = pub.duplicate();
  for (const c of [pub, sub]) c.on("error", (e) => console.error("redis:", e.message));
  await Promise.all([pub.connect(), sub.connect()]);
  backplane = redisBackplane(pub, sub);
}

const rooms = new RoomsServer({ lowLevelSend: process.env.ROOMS_LOW_LEVEL_SEND !== "0", backplane });
const log = [];
const timings = []; // ms spent in each message hook (the broadcast), for bench.mjs
rooms
  .use("connect", async ({ connection }, next) => {
    const reject = connection.auth?.reject;
    await next(typeof reject === "string" ? reject : undefined);
  })
  .use("message", (ctx, next) => next(ctx.type === "forbidden" ? "forbidden type" : undefined))
  .on({
    connect: ({ connection }) => {
      connection.tags.set("joinedAt", Date.now());
      log.push(["connect", connection.roomId, connection.id]);
    },
    message: ({ connection, data, type }) => {
      const t0 = performance.now();
      if (type === "echo") connection.send(data, type);
      else connection.broadcast(data, type, type === "all");
      if (timings.length < 10000) timings.push(performance.now() - t0);
    },
    disconnect: ({ connection, reason }) => log.push(["disconnect", connection.roomId, connection.id, reason]),
  });

// ROOMS_SKETCH=1 (bench.mjs): the approach of the old sketch in
// docs/rooms-protocol.md for comparison: a publication with Meteor's default
// merge box and one `added` + `removed` per member per message.
if (process.env.ROOMS_SKETCH === "1") {
  const inboxes = new Map(); // sessionId → publication handle
  Meteor.publish("sketch.inbox", function () {
    inboxes.set(this.connection.id, this);
    this.onStop(() => inboxes.delete(this.connection.id));
    this.ready();
  });
  Meteor.methods({
    "sketch.send"(roomId, data) {
      const t0 = performance.now();
      for (const c of rooms.connections(roomId)) {
        const pub = inboxes.get(c.sessionId);
        if (!pub) continue;
        const id = M.Random.id();
        pub.added("sketch.inbox", id, { room: roomId, data });
        pub.removed("sketch.inbox", id);
      }
      if (timings.length < 10000) timings.push(performance.now() - t0);
      return true;
    },
  });
}

// What a drop kills: the TCP sockets under the WebSockets.
const upgraded = new Set();
WebApp.httpServer.on("upgrade", (_req, socket) => {
  upgraded.add(socket);
  socket.once("close", () => upgraded.delete(socket));
});

const types = { ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".html": "text/html", ".json": "application/json", ".ts": "text/plain" };
function serve(prefix, dir) {
  WebApp.connectHandlers.use(prefix, async (req, res) => {
    // connect strips the mount prefix from req.url; the fixture's webapp does not.
    let rel = decodeURIComponent(new URL(req.url, "http://x").pathname);
    if (rel.startsWith(prefix + "/")) rel = rel.slice(prefix.length);
    rel = rel.replace(/^\/+/, "");
    const file = path.resolve(dir, rel);
    if (!file.startsWith(dir + path.sep)) return res.writeHead(403).end();
    try {
      const body = await readFile(file);
      res.writeHead(200, { "content-type": types[path.extname(file)] ?? "application/octet-stream", "cache-control": "no-store" });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
}
serve("/pkg", path.join(repo, "pkg"));
serve("/js-tests", path.join(repo, "tests/js"));

WebApp.connectHandlers.use("/control", (req, res) => {
  const url = new URL(req.url, "http://x");
  const reply = (body) => {
    res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" });
    res.end(JSON.stringify(body));
  };
  switch (url.pathname.replace(/\/+$/, "")) {
    case "/control/stats": {
      const room = url.searchParams.get("room");
      return reply({
        members: room ? rooms.connections(room).map((c) => c.id) : [],
        memberSessions: room ? rooms.connections(room).map((c) => c.sessionId) : [],
        sessions: [...Meteor.server.sessions.keys()],
        openSockets: Meteor.server.stream_server.all_sockets().length,
        mergeBoxViews: [...Meteor.server.sessions.values()].filter((s) => s.collectionViews.has("rooms.inbox")).length,
        serialised,
        timings: timings.splice(0),
        log,
      });
    }
    case "/control/drop": {
      const n = upgraded.size;
      for (const s of upgraded) s.destroy();
      return reply({ dropped: n });
    }
    default:
      res.writeHead(404).end();
  }
});

await rooms.ready;
await M.callStartupHooks();
await M.listen({ host: process.env.HOST || "127.0.0.1", port: Number(process.env.PORT || 4520) });
console.log(`rooms on Meteor ${M.source.describe} listening pid=${process.pid}`);
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(0));
