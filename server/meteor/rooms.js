// Rooms for Meteor apps: the server side of ddp-live's rooms protocol
// (docs/rooms-protocol.md) with the server API of MESCIUS js-collaboration.
//
//   import { RoomsServer } from "./rooms.js";
//   const rooms = new RoomsServer();
//   rooms.on("message", ({ connection, data, type }) => connection.broadcast(data, type));
//
// It installs, into Meteor.server, the methods `rooms.join`, `rooms.send`,
// `rooms.leave` and the publication `rooms.inbox`. See README.md beside this
// file for the API, the delivery path and the options.

const INBOX = "rooms.inbox";
const EVENTS = ["connect", "message", "disconnect"];
const MIDDLEWARE = ["connect", "message"];
const ID_CHARS = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz";

/** The server side of one membership: js-collaboration's server `Connection`. */
export class RoomConnection {
  #server;
  #session;

  constructor(server, session, roomId, { auth, query }) {
    this.#server = server;
    this.#session = session;
    /** A random 20-character id, also known to the client. */
    this.id = server._newId(20);
    /** The room. */
    this.roomId = roomId;
    /** What the client gave to `client.connect(roomId, { auth, query })`. */
    this.auth = auth ?? {};
    this.query = query ?? {};
    /** Per-connection data for the app. */
    this.tags = new Map();
  }

  /** The DDP session's id (Meteor's `this.connection.id`). */
  get sessionId() {
    return this.#session.id;
  }

  /** The DDP connection handle (`clientAddress`, `httpHeaders`, `close()`, ...). */
  get ddpConnection() {
    return this.#session.handle;
  }

  /** Sends a message to this client only. */
  send(data, type) {
    this.#server._deliver(this.roomId, [this.#session], data, type);
  }

  /**
   * Sends a message to everybody in the room, the sender only if
   * `includeSelf`; with a backplane, to the room's members on every instance.
   */
  broadcast(data, type, includeSelf = false) {
    this.#server._broadcast(this.roomId, data, type, includeSelf ? undefined : this.#session.id);
  }

  /** True while the membership lasts. */
  get joined() {
    return this.#session.rooms.get(this.roomId) === this;
  }
}

/**
 * Installs the rooms protocol into a Meteor server.
 *
 * options:
 * - `Meteor` (default: the app's `Meteor`, from `Package.meteor`)
 * - `lowLevelSend` (default true): serialise each message once and write the
 *   same frame to every member's socket; false: one `added` per member
 *   through Meteor's public publication API (more CPU per member).
 * - `backplane`: `{ publish(channel, text), subscribe(channel, onText) }`
 *   carrying broadcasts between instances (see `redisBackplane`).
 * - `channel` (default "ddp-live.rooms"): the backplane channel.
 */
export class RoomsServer {
  #meteor;
  #ddpCommon;
  #ejson;
  #options;
  /** roomId → Map(sessionId → RoomConnection) */
  #rooms = new Map();
  /** sessionId → { id, handle, rooms: Map(roomId → RoomConnection), inboxes: Set(sub) } */
  #sessions = new Map();
  #hooks = { connect: [], message: [], disconnect: [] };
  #middleware = { connect: [], message: [] };
  #instance;

  constructor(options = {}) {
    const pkg = globalThis.Package ?? {};
    this.#meteor = options.Meteor ?? pkg.meteor?.Meteor;
    if (!this.#meteor?.server) throw new Error("RoomsServer: no Meteor server (pass { Meteor })");
    this.#ddpCommon = pkg["ddp-common"]?.DDPCommon;
    this.#ejson = pkg.ejson?.EJSON;
    this.#options = { lowLevelSend: true, channel: "ddp-live.rooms", ...options };
    this.#instance = this._newId(17);
    this.#install();
    const bp = this.#options.backplane;
    /** Settles once the backplane listens (at once without one). */
    this.ready = Promise.resolve(bp ? bp.subscribe(this.#options.channel, (text) => this.#fromBackplane(text)) : undefined);
  }

  /**
   * Middleware: `use("connect" | "message", async (ctx, next) => …)` or
   * `use({ connect, message })`. `await next()` goes on; `next(reason)`
   * rejects (the client gets `join-rejected` / `message-rejected` with
   * that reason); a middleware that returns without calling `next` stops
   * the chain (a join is then refused, a message dropped).
   * ctx: `{ connection }` for connect, `{ connection, data, type }` for message.
   */
  use(name, fn) {
    return this.#register(this.#middleware, MIDDLEWARE, name, fn);
  }

  /**
   * Hooks: `on("connect" | "message" | "disconnect", (ctx) => …)` or
   * `on({ … })`. ctx: `{ connection }`, `{ connection, data, type }`,
   * `{ connection, reason }` (reason "client disconnect" or "transport close").
   */
  on(name, fn) {
    return this.#register(this.#hooks, EVENTS, name, fn);
  }

  /** The memberships of a room on this instance. */
  connections(roomId) {
    return [...(this.#rooms.get(roomId)?.values() ?? [])];
  }

  /** Sends to everybody in a room (every instance, with a backplane). */
  broadcast(roomId, data, type) {
    this._broadcast(roomId, data, type, undefined);
  }

  #register(table, names, name, fn) {
    if (name !== null && typeof name === "object") {
      for (const [k, f] of Object.entries(name)) this.#register(table, names, k, f);
      return this;
    }
    if (!names.includes(name)) throw new TypeError(`unknown event "${name}" (one of: ${names.join(", ")})`);
    if (typeof fn !== "function") throw new TypeError(`${name}: a function is needed`);
    table[name].push(fn);
    return this;
  }

  _newId(n) {
    const random = globalThis.Package?.random?.Random;
    if (random) return random.id(n);
    let s = "";
    for (let i = 0; i < n; i++) s += ID_CHARS[Math.floor(Math.random() * ID_CHARS.length)];
    return s;
  }

  #install() {
    const self = this;
    const server = this.#meteor.server;
    const strategies = globalThis.Package?.["ddp-server"]?.DDPServer?.publicationStrategies;
    // Fire-and-forget: nothing of rooms.inbox is kept in the merge box.
    if (strategies?.NO_MERGE_NO_HISTORY) server.setPublicationStrategy(INBOX, strategies.NO_MERGE_NO_HISTORY);
    // Arguments are validated here; `check` marks them checked for apps
    // that use audit-argument-checks.
    const checked = (...args) => {
      const pkg = globalThis.Package?.check;
      if (pkg) for (const a of args) pkg.check(a, pkg.Match.Any);
    };
    this.#meteor.publish(INBOX, function () {
      if (!this.connection) return this.ready();
      const s = self.#session(this.connection);
      s.inboxes.add(this);
      this.onStop(() => s.inboxes.delete(this));
      this.ready();
    });
    this.#meteor.methods({
      async "rooms.join"(roomId, options) {
        checked(roomId, options);
        return self.#join(this.connection, roomId, options);
      },
      async "rooms.send"(roomId, data, type) {
        checked(roomId, data, type);
        return self.#send(this.connection, roomId, data, type);
      },
      "rooms.leave"(roomId) {
        checked(roomId);
        return self.#leave(self.#sessions.get(this.connection?.id), roomId, "client disconnect");
      },
    });
  }

  #session(handle) {
    let s = this.#sessions.get(handle.id);
    if (!s) {
      s = { id: handle.id, handle, rooms: new Map(), inboxes: new Set() };
      this.#sessions.set(handle.id, s);
      // Membership ends with the DDP session.
      handle.onClose(() => {
        for (const roomId of [...s.rooms.keys()]) this.#leave(s, roomId, "transport close");
        this.#sessions.delete(s.id);
      });
    }
    return s;
  }

  async #join(handle, roomId, options) {
    if (typeof roomId !== "string" || roomId === "") throw this.#error("bad-room", "A room id is needed");
    if (!handle) throw this.#error("bad-room", "Rooms need a client connection");
    const opts = options !== null && typeof options === "object" ? options : {};
    const s = this.#session(handle);
    const connection = new RoomConnection(this, s, roomId, { auth: opts.auth, query: opts.query });
    const verdict = await runMiddleware(this.#middleware.connect, { connection });
    if (!verdict.passed) throw this.#error("join-rejected", verdict.reason ?? "not accepted");
    // The session may have closed while the middleware ran.
    if (!this.#sessions.has(s.id)) throw this.#error("join-rejected", "connection closed");
    // One membership per session and room: a new join replaces the old one.
    this.#leave(s, roomId, "client disconnect");
    s.rooms.set(roomId, connection);
    let members = this.#rooms.get(roomId);
    if (!members) this.#rooms.set(roomId, (members = new Map()));
    members.set(s.id, connection);
    this.#emit("connect", { connection });
    return { connectionId: connection.id };
  }

  async #send(handle, roomId, data, type) {
    const connection = this.#sessions.get(handle?.id)?.rooms.get(roomId);
    if (!connection) throw this.#error("not-joined", "Join the room first");
    const ctx = { connection, data, type: typeof type === "string" ? type : undefined };
    const verdict = await runMiddleware(this.#middleware.message, ctx);
    if (verdict.reason !== undefined) throw this.#error("message-rejected", verdict.reason);
    if (verdict.passed) this.#emit("message", ctx);
    return true;
  }

  #leave(s, roomId, reason) {
    const connection = s?.rooms.get(roomId);
    if (!connection) return false;
    s.rooms.delete(roomId);
    const members = this.#rooms.get(roomId);
    members?.delete(s.id);
    if (members?.size === 0) this.#rooms.delete(roomId);
    this.#emit("disconnect", { connection, reason });
    return true;
  }

  #emit(name, ctx) {
    for (const hook of this.#hooks[name]) {
      try {
        const r = hook(ctx);
        if (r && typeof r.catch === "function") r.catch((e) => this.#hookFailed(name, e));
      } catch (e) {
        this.#hookFailed(name, e);
      }
    }
  }

  #hookFailed(name, e) {
    this.#meteor._debug?.(`rooms: exception in a "${name}" hook`, e);
  }

  #error(code, reason) {
    return new this.#meteor.Error(code, reason);
  }

  // ---- delivery -----------------------------------------------------------

  _broadcast(roomId, data, type, exceptSessionId) {
    const id = this._newId(17);
    const frame = this.#frame(id, roomId, data, type);
    this.#deliverLocal(roomId, id, frame, exceptSessionId);
    const bp = this.#options.backplane;
    if (bp) {
      const text = JSON.stringify({ o: this.#instance, r: roomId, x: exceptSessionId ?? null, i: id, f: frame });
      Promise.resolve(bp.publish(this.#options.channel, text)).catch((e) => this.#hookFailed("backplane", e));
    }
  }

  _deliver(roomId, sessions, data, type) {
    const id = this._newId(17);
    const frame = this.#frame(id, roomId, data, type);
    for (const s of sessions) this.#write(s, id, frame);
  }

  #fromBackplane(text) {
    let m;
    try {
      m = JSON.parse(text);
    } catch {
      return;
    }
    if (!m || m.o === this.#instance || typeof m.r !== "string" || typeof m.f !== "string") return;
    this.#deliverLocal(m.r, String(m.i), m.f, m.x ?? undefined);
  }

  #deliverLocal(roomId, id, frame, exceptSessionId) {
    const members = this.#rooms.get(roomId);
    if (!members) return;
    for (const [sessionId, connection] of members) {
      if (sessionId !== exceptSessionId) this.#write(this.#sessions.get(connection.sessionId), id, frame);
    }
  }

  /** One DDP `added` frame for every recipient of a message. */
  #frame(id, roomId, data, type) {
    const fields = { room: roomId, data };
    if (typeof type === "string") fields.type = type;
    const msg = { msg: "added", collection: INBOX, id, fields };
    return this.#ddpCommon ? this.#ddpCommon.stringifyDDP(msg) : JSON.stringify(this.#ejson ? this.#ejson.toJSONValue(msg) : msg);
  }

  #write(s, id, frame) {
    if (!s) return;
    for (const sub of s.inboxes) {
      if (sub._isDeactivated?.()) continue;
      const socket = this.#options.lowLevelSend ? sub._session?.socket : undefined;
      if (socket && typeof socket.send === "function") {
        // Meteor itself would send this frame unchanged: rooms.inbox uses
        // NO_MERGE_NO_HISTORY, so `added` goes straight to the socket.
        socket.send(frame);
      } else {
        const fields = this.#ejson ? this.#ejson.fromJSONValue(JSON.parse(frame).fields) : JSON.parse(frame).fields;
        sub.added(INBOX, id, fields);
      }
      return; // one inbox per session is enough
    }
  }
}

/**
 * Runs middleware in order. Resolves `{ passed, reason }`: `passed` when the
 * chain reached its end, `reason` when a middleware called `next(reason)`.
 */
async function runMiddleware(list, ctx) {
  let passed = false;
  let reason;
  const dispatch = async (i) => {
    if (i === list.length) {
      passed = true;
      return;
    }
    let nextCalled;
    const next = (err) => {
      if (nextCalled) return nextCalled;
      if (err !== undefined && err !== null) {
        reason = reasonOf(err);
        nextCalled = Promise.resolve();
      } else {
        nextCalled = dispatch(i + 1);
      }
      return nextCalled;
    };
    await list[i](ctx, next);
    await nextCalled;
  };
  await dispatch(0);
  return { passed: passed && reason === undefined, reason };
}

function reasonOf(err) {
  if (typeof err === "string") return err;
  if (err instanceof Error) return err.reason ?? err.message;
  return String(err);
}

/**
 * A backplane over Redis pub/sub, from two node-redis (v4+) clients: one
 * that publishes and one in subscriber mode (`client.duplicate()`).
 */
export function redisBackplane(publisher, subscriber) {
  return {
    publish: (channel, text) => publisher.publish(channel, text),
    subscribe: (channel, onText) => subscriber.subscribe(channel, onText),
  };
}
