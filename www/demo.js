// The demo page: the npm package as a JavaScript app uses it. With
// `?offline=1` it loads the offline part ("ddp-live/offline") instead of
// the core ("ddp-live"): the same API, plus `persist` (calls and documents
// kept across reloads) and `shareAcrossTabs` (one socket for every tab).
const offline = new URLSearchParams(location.search).has("offline");
const { default: init, DDP, Client } = await import(offline ? "/pkg/offline.js" : "/pkg/ddp_live.js");

await init();

const scenario = "demo";
const wsUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/t/${scenario}/websocket`;
const shared = offline ? { shareAcrossTabs: true } : {};
const conn = DDP.connect(wsUrl, { heartbeatInterval: 5000, heartbeatTimeout: 5000, ...shared, ...(offline ? { persist: "demo" } : {}) });
document.getElementById("url").textContent = conn.url;
document.getElementById("mode").textContent = offline ? "Module: ddp-live/offline (persist + shareAcrossTabs)." : "Module: ddp-live (the core).";

const $ = (id) => document.getElementById(id);
const log = (text) => {
  const li = document.createElement("li");
  li.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
  $("log").prepend(li);
};

let status = conn.status();
conn.onStatusChange((s) => {
  status = s;
  render();
  log(`status → ${s.status}${s.retryCount ? ` (retry ${s.retryCount})` : ""}${s.reason ? `: ${s.reason}` : ""}`);
});

function render() {
  $("badge").textContent = status.status;
  $("badge").className = `badge ${status.status}`;
  $("f-connected").textContent = String(status.connected);
  $("f-retryCount").textContent = String(status.retryCount);
  $("f-reason").textContent = status.reason ?? "–";
  $("f-id").textContent = conn.id ?? "–";
  if (status.retryTime !== undefined) {
    const left = Math.max(0, status.retryTime - Date.now());
    $("f-retryTime").textContent = `in ${(left / 1000).toFixed(1)} s`;
  } else {
    $("f-retryTime").textContent = "–";
  }
}
// The countdown to retryTime.
setInterval(render, 100);

conn.on("connect", () => log(`connect (session ${conn.id})`));
conn.on("disconnect", (reason) => log(`disconnect: ${reason}`));
conn.on("reconnect_attempt", (n) => log(`reconnect_attempt #${n}`));
conn.on("reconnect", (n) => log(`reconnect after ${n} attempt(s)`));
conn.on("reconnect_failed", () => log("reconnect_failed"));
conn.on("error", (e) => log(`error [${e.code}]: ${e.message}`));

conn.onOutboxChange((o) => {
  $("outbox").textContent = `${o.queued} queued, ${o.inFlight} in flight`;
});
const run = (name, ...args) => {
  log(`call ${name}(${args.map((a) => JSON.stringify(a)).join(", ")})`);
  conn.call(name, ...args).then(
    (r) => log(`${name} → ${JSON.stringify(r)}`),
    (e) => log(`${name} failed: ${e.reason} [${e.error}]`),
  );
};
$("call-add").onclick = () => run("add", 2, 3);
$("call-sleep").onclick = () => run("sleep", 2000);
$("call-inc").onclick = () => run("inc", "clicks");
$("call-fail").onclick = () => run("fail", "not-allowed", "The demo says no");

$("reconnect").onclick = () => conn.reconnect();
$("disconnect").onclick = () => conn.disconnect();
for (const b of document.querySelectorAll("[data-fault]")) {
  b.onclick = () => fetch(`/control/${scenario}/${b.dataset.fault}`, { method: "POST" });
}
// Offline-first: todos through a client stub (Meteor's insert: the id comes
// from the call's randomSeed, so a call re-sent after a reload makes the
// same document), the calls kept in IndexedDB, the cached todos shown at
// once after a reload (stale until the subscription is ready again).
if (offline) {
  $("offline-off").hidden = true;
  $("offline-on").hidden = false;
  conn.methods({
    insertDoc(collection, doc) {
      return this.insert(collection, doc);
    },
  });
  conn.subscribe("docs", "todos");
  const todos = conn.collection("todos");
  const renderTodos = () => {
    $("todos").replaceChildren(
      ...todos.find({}, { sort: { at: 1 } }).map((d) => {
        const li = document.createElement("li");
        li.textContent = d.text;
        li.dataset.id = d._id;
        return li;
      }),
    );
  };
  todos.onChange(renderTodos);
  renderTodos();
  conn.onPersistedCallsChange((calls) => {
    $("kept").textContent = `${calls.length}${calls.some((c) => c.fromEarlierPage) ? " (some from an earlier page)" : ""}`;
  });
  conn.onStaleChange((stale) => {
    $("stale").textContent = String(stale);
    $("todos").style.opacity = stale ? 0.6 : 1;
  });
  conn.on("persist", (e) => {
    if (e.type === "settled") log(`kept call ${e.name} (${e.key}) settled: ${e.error ? `failed: ${e.error.reason} [${e.error.error}]` : JSON.stringify(e.result)}`);
    else if (e.type === "storageFailed" || e.type === "cacheFailed") log(`${e.type} [${e.error.code}]: ${e.error.message}`);
    else log(`persist: ${JSON.stringify(e)}`);
  });
  $("todo-form").onsubmit = (ev) => {
    ev.preventDefault();
    const text = $("todo-input").value.trim();
    if (!text) return;
    $("todo-input").value = "";
    conn.apply("insertDoc", ["todos", { text, at: new Date() }]).then(
      (id) => log(`insertDoc → ${id}`),
      (e) => log(`insertDoc failed: ${e.reason} [${e.error}]`),
    );
  };
  const stats = async () => {
    const s = await (await fetch(`/control/${scenario}/stats`, { method: "POST" })).json();
    $("sockets").textContent = String(s.connections);
  };
  $("stats").onclick = stats;
  setInterval(stats, 2000);
  stats();
}

// The chat room: its own client, joined to "lobby" (its own socket; with
// shareAcrossTabs it joins the tabs' one). Type "all" makes the test server
// send the message to everybody, the sender included.
const client = new Client(wsUrl, { heartbeatInterval: 5000, heartbeatTimeout: 5000, ...shared });
const room = client.connect("lobby", { auth: { user: "demo" } });
const roomState = () => {
  $("room-id").textContent = room.id ?? "–";
  $("room-state").textContent = room.connected ? "joined" : "not joined";
};
for (const e of ["connect", "disconnect", "reconnect"]) room.on(e, roomState);
room.on("message", (data) => {
  const li = document.createElement("li");
  li.textContent = `${new Date().toLocaleTimeString()}  ${data.from}: ${data.text}`;
  $("chat").prepend(li);
});
$("chat-form").onsubmit = (ev) => {
  ev.preventDefault();
  const text = $("chat-input").value.trim();
  if (!text) return;
  $("chat-input").value = "";
  room.send({ from: (room.id ?? "me").slice(0, 6), text }, "all").catch((e) => log(`send failed: ${e.reason}`));
};
window.conn = conn;
window.room = room;
