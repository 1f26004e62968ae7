// Type-checked (never run) by tests/js/types.test.mjs: the package's
// TypeScript definitions must describe real use without `any` leaking in.
import init, { DDP, Client, EJSON, type DDPStatus, type DDPMethodError } from "../../../pkg/ddp_live.js";
// The offline part: the same API and types, and the options that need it.
import initOffline, * as offline from "../../../pkg/offline.js";
import type { DDPPersistEvent, DDPPersistedCall, DDPStorageError, DDPStorageErrorCode } from "../../../pkg/offline.js";

async function main(): Promise<void> {
  await init();
  const conn = DDP.connect("https://example.com", { heartbeatInterval: 5000, retry: { baseTimeout: 500 } });
  const s: DDPStatus = conn.status();
  const state: "connected" | "connecting" | "failed" | "waiting" | "offline" = s.status;
  conn.on("disconnect", (reason) => {
    const r: "client disconnect" | "server disconnect" | "ping timeout" | "transport close" | "transport error" = reason;
    void r;
  });
  conn.on("reconnect_attempt", (n) => n.toFixed());
  conn.once("error", (e) => e.code.toUpperCase());
  const handle = conn.onStatusChange((st) => st.retryCount);
  handle.stop();
  const sum = await conn.call("add", 1, 2);
  void sum;
  await conn.apply("echo", [1], { wait: true, timeoutMs: 100, onResultReceived: (err, res) => void [err, res] });
  conn.apply("x").catch((e: DDPMethodError) => e.error);
  const sub = conn.subscribe("items", 10, { onReady: () => {}, onStop: (err) => void err });
  const ready: boolean = sub.ready();
  const docs = conn.collection("items").find();
  const id: string = docs[0]._id;
  conn.collection("items").onChange((c) => (c.type === "changed" ? c.cleared.length : c.id));
  const open = conn.collection("items").find({ done: false, n: { $gt: 1 }, t: /x/i }, { sort: { n: -1 }, limit: 20, fields: { n: 1 } });
  const first = conn.collection("items").findOne({ done: false }, { sort: [["n", "desc"]] });
  const live = conn.collection("items").observe({ done: false }, { sort: { n: 1 } }, {
    addedAt: (doc, i, before) => void [doc._id, i + 1, before?.length],
    movedTo: (doc, from, to) => void [doc, from - to],
  });
  conn.collection("items").observeChanges(undefined, undefined, { changed: (cid, fields) => void [cid, fields] }).stop();
  live.stop();
  void [open[0]._id, first?._id];
  // @ts-expect-error: limit is a number
  conn.collection("items").find({}, { limit: "5" });
  EJSON.addType("point", (v) => v);
  const client = new Client("ws://localhost:3000");
  const room = client.connect("lobby", { auth: { token: "t" } });
  room.on("message", (data, type) => void [data, type]);
  room.on("reconnectFailed", () => {});
  const ack: true = await room.send({ a: 1 }, "op");
  // Accounts.
  const userId: string = await conn.loginWithPassword("ada", "pw");
  await conn.loginWithPassword({ email: "ada@example.com" }, "pw");
  await conn.loginWithToken("token");
  await conn.createUser({ username: "ada", password: "pw", profile: { name: "Ada" } });
  const now: string | null = conn.userId();
  const busy: boolean = conn.loggingIn();
  const me = conn.user();
  const myId: string | undefined = me?._id;
  conn.onUserIdChange((uid) => uid?.length).stop();
  conn.on("login_failed", (e) => e.reason);
  conn.on("loggedOut", () => {});
  const resumed: boolean = conn.persistLogin({ ownApp: false });
  conn.setLoginUserWait(2000);
  await conn.logout();
  await conn.logoutOtherClients();
  // @ts-expect-error: a selector has one of username, email, id
  conn.loginWithPassword({ name: "ada" }, "pw");
  void [state, ready, id, ack, userId, now, busy, myId, resumed];
  // @ts-expect-error: an unknown event is a type error
  conn.on("conect", () => {});
  // @ts-expect-error: room messages are not DDP connection events
  conn.on("message", () => {});
}
void main;

async function offlineUsage(): Promise<void> {
  const { memory } = await initOffline();
  void memory;
  const conn = offline.DDP.connect("https://example.com", { persist: true, shareAcrossTabs: true });
  const named: offline.DDPConnection = offline.DDP.connect("https://example.com", { persist: "todos" });
  // The same classes' types as the core module's.
  const same: import("../../../pkg/ddp_live.js").DDPConnection = named;
  const calls: DDPPersistedCall[] = conn.persistedCalls();
  const first = calls[0];
  const fields: [string, number | null, string, string | null, boolean, boolean, boolean] = [
    first.key,
    first.id,
    first.name,
    first.user,
    first.fromEarlierPage,
    first.waitingForUser,
    first.durable,
  ];
  conn.onPersistedCallsChange((list) => list.length.toFixed()).stop();
  const cancelled: boolean = conn.cancelPersistedCall(first.key);
  const stale: boolean = conn.stale;
  conn.onStaleChange((s: boolean) => void s).stop();
  conn.on("persist", (e: DDPPersistEvent) => {
    switch (e.type) {
      case "settled": {
        const key: string = e.key;
        const failed: string | number | undefined = e.error?.error;
        void [key, failed, e.result, e.name];
        break;
      }
      case "storageFailed": {
        const code: DDPStorageErrorCode = e.error.code;
        const key: string | null = e.key;
        void [code, key];
        break;
      }
      case "cacheFailed": {
        const err: DDPStorageError = e.error;
        void err.message;
        break;
      }
      case "restored":
        void (e.count + e.waiting);
        break;
      case "waitingForUser":
        void [e.user, e.keys.length];
        break;
      case "cacheRestored":
        void [e.documents, e.user];
        break;
      case "cacheWritten":
      case "cacheFull":
        void e.documents;
        break;
      case "discarded":
      case "skipped":
        void [e.key, e.reason];
        break;
      default: {
        const never: never = e;
        void never;
      }
    }
  });
  // The core module's types take the options too (it throws "offline-not-loaded" at run time).
  DDP.connect("https://example.com", { persist: "todos" });
  // @ts-expect-error: persist is true, false or a store name
  offline.DDP.connect("https://example.com", { persist: 3 });
  // @ts-expect-error: shareAcrossTabs is a boolean
  offline.DDP.connect("https://example.com", { shareAcrossTabs: "yes" });
  // @ts-expect-error: no such persist event
  conn.on("persist", (e) => e.type === "saved");
  // @ts-expect-error: a storage error's code is one of the storage codes
  const wrong: DDPStorageErrorCode = "storage-full";
  void [same, fields, cancelled, stale, wrong];
}
void offlineUsage;
