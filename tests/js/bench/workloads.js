// The benchmark workloads, the same for every client, run in one page.
// Each returns a number (ms, or calls/s) or an object of numbers.

const now = () => performance.now();
const control = (sc, action) => fetch(`/control/${sc}/${action}`, { method: "POST" });
// Bytes the page holds (JS heap, plus wasm memory for ddp-live), after a full
// garbage collection (the bench starts Chromium with --expose-gc and precise
// memory info).
const heap = () => {
  window.gc?.();
  return performance.memory.usedJSHeapSize + (window.ddpWasm?.memory.buffer.byteLength ?? 0);
};
const pct = (xs, p) => xs.slice().sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

function ddpLive(url, options = {}) {
  const conn = window.ddp.DDP.connect(url, { watchPage: false, ...options });
  return new Promise((res) => conn.once("connect", () => res(conn)));
}

function ddpjs(url) {
  const c = new window.DDPjs({ endpoint: url, SocketConstructor: WebSocket });
  const results = new Map();
  c.on("result", (m) => results.get(m.id)?.(m));
  c.call = (name, params) =>
    new Promise((res, rej) => {
      const id = c.method(name, params);
      results.set(id, (m) => (results.delete(id), m.error ? rej(m.error) : res(m.result)));
    });
  return new Promise((res) => c.once("connected", () => res(c)));
}

async function simple(url) {
  const s = new window.simpleDDP({ endpoint: url, SocketConstructor: WebSocket, reconnectInterval: 1000 });
  await s.connect();
  return s;
}

// Cold start (run in cold.html, a fresh page that has loaded no client):
// the clock starts before the client's code is fetched (`tag`, unique per
// run, keeps every URL out of the HTTP cache and so out of Chromium's
// compiled-code cache, which is keyed by URL) and stops at its connected
// event. `load` is the code's part (for ddp-live: importing the glue and
// `init()`, which fetches, compiles and instantiates the wasm; for the JS
// clients: fetching and evaluating the bundled script), `connect` the rest.
async function coldStart(tag, load, connect) {
  const t0 = now();
  await load(tag);
  const t1 = now();
  const close = await connect();
  const t2 = now();
  close();
  return { ms: t2 - t0, load: t1 - t0, connect: t2 - t1 };
}
// ddp-live's cold start from one of the package's entries (its ES module
// and its wasm, under /pkg/).
const ddpLiveColdStart = (entry, wasm, url, tag) =>
  coldStart(
    tag,
    async (tag) => {
      const glue = await import(`/pkg/${entry}?cold=${tag}`);
      window.ddpWasm = await glue.default({ module_or_path: `/pkg/${wasm}?cold=${tag}` });
      window.ddp = glue;
    },
    async () => {
      const conn = await ddpLive(url);
      return () => conn.close();
    },
  );
const loadScript = (src) =>
  new Promise((res, rej) => {
    const s = document.createElement("script");
    s.src = src;
    s.onload = res;
    s.onerror = () => rej(new Error(`cannot load ${src}`));
    document.head.append(s);
  });

export const bench = {
  "ddp-live": {
    coldStart: (url, tag) => ddpLiveColdStart("ddp_live.js", "ddp_live_bg.wasm", url, tag),
    // The same with the core part (`ddp-live/core`).
    coldStartCore: (url, tag) => ddpLiveColdStart("core.js", "ddp_live_core_bg.wasm", url, tag),
    async subscribe(url, n) {
      const conn = await ddpLive(url);
      const items = conn.collection("items");
      const m0 = heap();
      const t0 = now();
      await new Promise((res) => conn.subscribe("items", n, 200, { onReady: res }));
      const ms = now() - t0;
      const bytes = heap() - m0;
      const count = items.count();
      conn.close();
      if (count !== n) throw new Error(`ddp-live: ${count} of ${n} documents`);
      return { ms, bytes };
    },
    // The same, with an onChange listener that receives every document as
    // a JS object (what a page rendering each document does).
    async subscribeObserved(url, n) {
      const conn = await ddpLive(url);
      const items = conn.collection("items");
      let changes = 0;
      const watch = items.onChange((c) => {
        if (c.type === "added" && c.fields.pad !== undefined) changes++;
      });
      const t0 = now();
      await new Promise((res) => conn.subscribe("items", n, 200, { onReady: res }));
      const ms = now() - t0;
      watch.stop();
      conn.close();
      if (changes !== n) throw new Error(`ddp-live: ${changes} of ${n} changes observed`);
      return ms;
    },
    // Timed to the `result` (what ddp.js and simpleddp resolve on), and to
    // completion (`result` and `updated`: the writes are visible), which
    // only ddp-live waits for.
    async sequential(url, n) {
      const conn = await ddpLive(url);
      const lat = [];
      const done = [];
      for (let i = 0; i < n; i++) {
        const t = now();
        let resultAt = 0;
        await conn.apply("echo", [i], { onResultReceived: () => (resultAt = now()) });
        lat.push(resultAt - t);
        done.push(now() - t);
      }
      conn.close();
      return { p50: pct(lat, 50), p99: pct(lat, 99), p50Done: pct(done, 50), p99Done: pct(done, 99) };
    },
    async pipelined(url, n) {
      const conn = await ddpLive(url, { maxPendingCalls: n + 1 });
      const t0 = now();
      await Promise.all(Array.from({ length: n }, (_, i) => conn.call("echo", i)));
      const ms = now() - t0;
      conn.close();
      return (n / ms) * 1000;
    },
    async dropToConnected(url, sc) {
      const conn = await ddpLive(url);
      const back = new Promise((res) => conn.once("reconnect", res));
      const t0 = now();
      await control(sc, "drop");
      await back;
      const ms = now() - t0;
      conn.close();
      return ms;
    },
    async deadDetection(url, sc) {
      const conn = await ddpLive(url, { heartbeatInterval: 2000, heartbeatTimeout: 2000 });
      const lost = new Promise((res) => conn.once("disconnect", res));
      await control(sc, "silent?on=true");
      const t0 = now();
      await lost;
      const ms = now() - t0;
      conn.close();
      await control(sc, "silent?on=false");
      return ms;
    },
  },
  "ddp.js": {
    coldStart: (url, tag) =>
      coldStart(
        tag,
        (tag) => loadScript(`/bench-www/ddpjs.min.js?cold=${tag}`),
        async () => {
          const c = await ddpjs(url);
          return () => c.disconnect();
        },
      ),
    async subscribe(url, n) {
      const c = await ddpjs(url);
      const docs = new Map(); // the minimal store ddp.js leaves to the app
      c.on("added", (m) => docs.set(m.id, { ...m.fields, _id: m.id }));
      c.on("changed", (m) => Object.assign(docs.get(m.id) ?? {}, m.fields));
      c.on("removed", (m) => docs.delete(m.id));
      const m0 = heap();
      const t0 = now();
      const id = c.sub("items", [n, 200]);
      await new Promise((res) => c.on("ready", (m) => m.subs.includes(id) && res()));
      const ms = now() - t0;
      const bytes = heap() - m0;
      c.disconnect();
      if (docs.size !== n) throw new Error(`ddp.js: ${docs.size} of ${n} documents`);
      return { ms, bytes };
    },
    async sequential(url, n) {
      const c = await ddpjs(url);
      const lat = [];
      for (let i = 0; i < n; i++) {
        const t = now();
        await c.call("echo", [i]);
        lat.push(now() - t);
      }
      c.disconnect();
      return { p50: pct(lat, 50), p99: pct(lat, 99) };
    },
    async pipelined(url, n) {
      const c = await ddpjs(url);
      const t0 = now();
      await Promise.all(Array.from({ length: n }, (_, i) => c.call("echo", [i])));
      const ms = now() - t0;
      c.disconnect();
      return (n / ms) * 1000;
    },
    async dropToConnected(url, sc) {
      const c = await ddpjs(url);
      const back = new Promise((res) => c.once("disconnected", () => c.once("connected", res)));
      const t0 = now();
      await control(sc, "drop");
      await back;
      const ms = now() - t0;
      c.disconnect();
      return ms;
    },
    deadDetection: null, // no client heartbeat: a silent server is never detected
  },
  simpleddp: {
    coldStart: (url, tag) =>
      coldStart(
        tag,
        (tag) => loadScript(`/bench-www/simpleddp.min.js?cold=${tag}`),
        async () => {
          const s = await simple(url);
          return () => s.disconnect();
        },
      ),
    async subscribe(url, n) {
      const s = await simple(url);
      const m0 = heap();
      const t0 = now();
      const sub = s.subscribe("items", n, 200);
      await sub.ready();
      const ms = now() - t0;
      const bytes = heap() - m0;
      const count = s.collection("items").fetch().length;
      s.disconnect();
      if (count !== n) throw new Error(`simpleddp: ${count} of ${n} documents`);
      return { ms, bytes };
    },
    async sequential(url, n) {
      const s = await simple(url);
      const lat = [];
      for (let i = 0; i < n; i++) {
        const t = now();
        await s.call("echo", i);
        lat.push(now() - t);
      }
      s.disconnect();
      return { p50: pct(lat, 50), p99: pct(lat, 99) };
    },
    async pipelined(url, n) {
      const s = await simple(url);
      const t0 = now();
      await Promise.all(Array.from({ length: n }, (_, i) => s.call("echo", i)));
      const ms = now() - t0;
      s.disconnect();
      return (n / ms) * 1000;
    },
    async dropToConnected(url, sc) {
      const s = await simple(url);
      const back = new Promise((res) => {
        const down = s.on("disconnected", () => {
          down.stop();
          const up = s.on("connected", () => (up.stop(), res()));
        });
      });
      const t0 = now();
      await control(sc, "drop");
      await back;
      const ms = now() - t0;
      s.disconnect();
      return ms;
    },
    deadDetection: null,
  },
  "JSON.parse floor": {
    async subscribe(url, n) {
      const ws = new WebSocket(url);
      await new Promise((res) => (ws.onopen = res));
      let added = 0;
      let t0 = 0;
      await new Promise((res) => {
        ws.onmessage = (e) => {
          const m = JSON.parse(e.data);
          if (m.msg === "connected") {
            t0 = now();
            ws.send(JSON.stringify({ msg: "sub", id: "s", name: "items", params: [n, 200] }));
          }
          else if (m.msg === "added") added++;
          else if (m.msg === "ready") res();
          else if (m.msg === "ping") ws.send(JSON.stringify({ msg: "pong", id: m.id }));
        };
        ws.send(JSON.stringify({ msg: "connect", version: "1", support: ["1"] }));
      });
      const ms = now() - t0;
      ws.close();
      if (added !== n) throw new Error(`floor: ${added} of ${n}`);
      return ms;
    },
    // The most any client could reach here: n `method` frames sent with
    // JSON.stringify in one go, every reply read with JSON.parse and nothing
    // else, done when every call's `result` and `updated` have arrived (the
    // server sends both for each call; ddp.js resolves on the first,
    // ddp-live on both).
    async pipelined(url, n) {
      const ws = new WebSocket(url);
      await new Promise((res) => (ws.onopen = res));
      await new Promise((res) => {
        ws.onmessage = (e) => JSON.parse(e.data).msg === "connected" && res();
        ws.send(JSON.stringify({ msg: "connect", version: "1", support: ["1"] }));
      });
      let results = 0;
      let updated = 0;
      const t0 = now();
      await new Promise((res) => {
        ws.onmessage = (e) => {
          const m = JSON.parse(e.data);
          if (m.msg === "result") results++;
          else if (m.msg === "updated") updated += m.methods.length;
          else if (m.msg === "ping") ws.send(JSON.stringify({ msg: "pong", id: m.id }));
          if (results === n && updated === n) res();
        };
        for (let i = 0; i < n; i++) ws.send(JSON.stringify({ msg: "method", id: String(i + 1), method: "echo", params: [i] }));
      });
      const ms = now() - t0;
      ws.close();
      return (n / ms) * 1000;
    },
  },
};
