// The npm package's JavaScript API: a thin TypeScript layer over the wasm
// module's narrow ABI (src/js/mod.rs). Only numbers and strings cross: the
// objects here hold handles, values cross as JSON text (EJSON encoded here
// with JSON.stringify, revived after JSON.parse), and everything the wasm
// says arrives through one function, `sink(id, kind, text)`. The protocol,
// the outbox, stubs, queries, accounts and rooms all live in Rust; this file
// is the API's shape: argument checks, Promises, listeners, EJSON values.
//
// scripts/build-pkg.sh compiles it (tsc --strict: the package's .d.ts comes
// from here) and bundles it with the wasm-bindgen glue (./glue.js, which the
// build puts beside it) into pkg/ddp_live.js with esbuild.
//
// It is bundled twice, from this one source: the core (pkg/ddp_live.js, over
// the wasm built with cargo feature `js`) and the offline part
// (pkg/offline.js, `ddp-live/offline`, over a second wasm built with `js`,
// `persist` and `tabs`: the durable outbox and cache, one socket for every
// tab). `OFFLINE` tells them apart (esbuild's --define): the core's bundle
// drops every branch that needs the offline part's exports, and throws a
// DDPError "offline-not-loaded" where an app asks for them.
import * as w from "./glue.js";
import wasmInit, { initSync as wasmInitSync } from "./glue.js";

/** @internal True in the offline part's bundle (set by the build). */
declare const OFFLINE: boolean;
/**
 * @internal True in the bundles with live queries, accounts and rooms: the
 * package's default export and the offline part; false in the core part
 * (`ddp-live/core`, over a wasm built with cargo feature `js` alone), whose
 * bundle drops every branch that needs their exports and throws a DDPError
 * "part-not-loaded" where an app asks for them.
 */
declare const FULL: boolean;

// ---- types ------------------------------------------------------------------

/** The five states of Meteor's connection status. */
export type DDPStatusValue = "connected" | "connecting" | "failed" | "waiting" | "offline";

/** Exactly the fields of Meteor's `Meteor.status()`. */
export interface DDPStatus {
  /** True once the server's DDP `connected` message arrived (not merely when the socket opened). */
  connected: boolean;
  status: DDPStatusValue;
  /** Automatic retries since the connection was last up. */
  retryCount: number;
  /** Epoch ms of the next attempt; present only while `waiting`. */
  retryTime?: number;
  /** Why the connection failed; present only while `failed`. */
  reason?: string;
}

/** The retry schedule; defaults are Meteor's. */
export interface DDPRetryOptions {
  minCount?: number;
  minTimeout?: number;
  baseTimeout?: number;
  exponent?: number;
  maxTimeout?: number;
  fuzz?: number;
}

/** Options of `DDP.connect`; times in milliseconds. Unknown keys are an error. */
export interface DDPConnectOptions {
  /** Idle time before a ping (default 17500, 0 disables the heartbeat). */
  heartbeatInterval?: number;
  /** How long a ping may go unanswered (default 15000). */
  heartbeatTimeout?: number;
  /** From opening the socket to `connected` (default 10000, 0: no limit). */
  connectTimeout?: number;
  retry?: DDPRetryOptions;
  /** Give up after this many automatic retries in a row (default: never). */
  maxRetries?: number | null;
  /** DDP versions to offer, preferred first (default ["1", "pre2", "pre1"]). */
  versions?: Array<"1" | "pre2" | "pre1">;
  /** Largest frame accepted, in bytes (default 16 MiB). */
  maxFrameBytes?: number;
  /** Listen to online/offline/visibilitychange/pageshow (default true). */
  watchPage?: boolean;
  /** Most method calls outstanding at once (default 10000); beyond it calls fail with "queue-full". */
  maxPendingCalls?: number;
  /** Most bytes of method arguments outstanding at once (default 16 MiB). */
  maxPendingBytes?: number;
  /** Ask the server to resume the session after a drop (default true). */
  resumeSessions?: boolean;
  /**
   * Keep the method calls (and the subscriptions' documents) in IndexedDB
   * across reloads, under this store name (`true`: the name "default"),
   * scoped to the server URL. Needs the offline part (`ddp-live/offline`);
   * the core module throws a DDPError "offline-not-loaded".
   */
  persist?: boolean | string;
  /**
   * Share one socket with every other tab of this origin connected to the
   * same URL (a leader tab holds it). Needs the offline part
   * (`ddp-live/offline`); the core module throws "offline-not-loaded".
   */
  shareAcrossTabs?: boolean;
}

/** Options of `conn.apply`. */
export interface DDPApplyOptions {
  /** Run alone: nothing after it is sent until it completes. */
  wait?: boolean;
  /** Never re-send after a drop: fail with "invocation-failed" instead (unless the session is resumed). */
  noRetry?: boolean;
  /** Called as soon as the server's `result` arrives (before its writes are visible). */
  onResultReceived?: (error: DDPMethodError | undefined, result: unknown) => void;
  /** Fail with "timeout" if not completed in this many ms. */
  timeoutMs?: number;
  /** Cancels the call if it has not been sent yet (it fails with "cancelled"). */
  signal?: AbortSignal;
  /** Resolve with the client stub's return value instead of the server's. */
  returnStubValue?: boolean;
  /** If the stub throws, reject and do not call the server (default: log and call the server). */
  throwStubExceptions?: boolean;
}

/** A failed method call, shaped like Meteor.Error. */
export interface DDPMethodError extends Error {
  errorType: "Meteor.Error";
  /** The server's error code, or one of this client's: "invocation-failed", "timeout", "queue-full", "cancelled", "closed", "bad-arguments", "stub-failed", "message-too-big", or a "frame-*" code (see the README's Errors). */
  error: string | number;
  reason?: string;
  details?: unknown;
}

/** `this` inside a client stub. */
export interface DDPMethodInvocation {
  isSimulation: true;
  name: string;
  /** The call's randomSeed (asking for it makes the call send it). */
  randomSeed(): string;
  /** The next id of the stream `scope` of this call's seed; the test server generates the same. */
  randomId(scope?: string): string;
  /** Inserts a document locally (id: its `_id`, else the next id of stream `collection`); returns the id. */
  insert(collection: string, doc: Record<string, unknown>): string;
  /** Sets fields locally (`null` clears one); false if there is no such document. */
  update(collection: string, id: string, fields: Record<string, unknown>): boolean;
  /** Removes a document locally. */
  remove(collection: string, id: string): void;
  /** The document as the app sees it now. */
  findOne(collection: string, id: string): DDPDocument | undefined;
}

/** Queued (not yet sent) and in-flight method calls. */
export interface DDPOutbox {
  queued: number;
  inFlight: number;
}

export type DDPDisconnectReason = "client disconnect" | "server disconnect" | "ping timeout" | "transport close" | "transport error";

/** Errors thrown or emitted by this package. */
export interface DDPError extends Error {
  name: "DDPError";
  /** A stable code, e.g. "invalid-url", "invalid-options", "frame-not-json", "server-error". */
  code: string;
}

/** The codes of a storage failure (the durable outbox's or cache's). */
export type DDPStorageErrorCode = "storage-unavailable" | "storage-quota-exceeded" | "storage-incompatible" | "storage-closing" | "storage-failed";

/** Why IndexedDB could not keep (or read) something: never a lost call, which then goes out from memory. */
export interface DDPStorageError extends DDPError {
  code: DDPStorageErrorCode;
}

/** A method call the durable outbox keeps (`persist`). */
export interface DDPPersistedCall {
  /** Its key in the store, unique across pages: what `cancelPersistedCall` and the `settled` event name. */
  key: string;
  /** Its method id on this page (null while an earlier page's call waits for its user). */
  id: number | null;
  name: string;
  /** The user it was made as (null: nobody was logged in). */
  user: string | null;
  /** Made by an earlier page: no Promise waits for it here; its end is a `settled` event. */
  fromEarlierPage: boolean;
  /** Waiting for its user to log in again before it is sent. */
  waitingForUser: boolean;
  /** IndexedDB confirmed it keeps the call: a reload now loses nothing. */
  durable: boolean;
}

/** What the durable outbox and cache tell the app (the `persist` event). */
export type DDPPersistEvent =
  /** The calls an earlier page left were read: `count` are back in the outbox, `waiting` wait for their user. */
  | { type: "restored"; count: number; waiting: number }
  /** A call an earlier page made has settled: `result` (absent when the method returned nothing), or `error`. */
  | { type: "settled"; key: string; name: string; result?: unknown; error?: DDPMethodError }
  /** Calls made as `user`, who is not logged in: kept until `user` logs in again (or they are cancelled). */
  | { type: "waitingForUser"; user: string; keys: string[] }
  /** The store could not be opened (calls then live in memory only), or refused the call of `key` (which still goes out). */
  | { type: "storageFailed"; key: string | null; error: DDPStorageError }
  /** A stored record could not be read (damaged) and was removed. */
  | { type: "discarded"; key: string; reason: string }
  /** A stored record written by a newer client: a call's is left for it, a cached document's removed. */
  | { type: "skipped"; key: string; reason: string }
  /** The durable cache was read: `documents` of `user`'s show now, stale until the subscriptions are ready. */
  | { type: "cacheRestored"; documents: number; user: string | null }
  /** A batch of the cache's changes was kept; it now holds `documents`. */
  | { type: "cacheWritten"; documents: number }
  /** The cache reached its bound: documents past it are not kept (told once). */
  | { type: "cacheFull"; documents: number; bytes: number }
  /** The durable cache failed: the documents are not kept across reloads (calls are not affected). */
  | { type: "cacheFailed"; error: DDPStorageError };

/** Events of a DDP connection and their listeners' arguments. */
export interface DDPConnectionEvents {
  connect: () => void;
  disconnect: (reason: DDPDisconnectReason) => void;
  error: (error: DDPError) => void;
  reconnect_attempt: (attempt: number) => void;
  reconnectAttempts: (attempt: number) => void;
  reconnect: (attempts: number) => void;
  reconnect_failed: () => void;
  reconnectFailed: () => void;
  /** Logged in (any login: password, token, the re-login after a reconnect). */
  login: (userId: string) => void;
  /** A login failed: a wrong password, or a token the server rejected. */
  login_failed: (error: DDPMethodError) => void;
  loginFailed: (error: DDPMethodError) => void;
  /** A logged-in client was logged out: `logout()`, or its token is no longer accepted. */
  loggedOut: () => void;
  logout: () => void;
  /** The durable outbox and cache (`persist`, offline part): restored calls, how an earlier page's calls settled, storage failures. */
  persist: (event: DDPPersistEvent) => void;
}

/** `on` / `once` / `off` over an event map. */
export interface DDPEmitter<Events> {
  /** Calls `listener` every time `event` happens. */
  on<E extends keyof Events>(event: E, listener: Events[E]): void;
  /** Calls `listener` the next time `event` happens, once. */
  once<E extends keyof Events>(event: E, listener: Events[E]): void;
  /** Removes `listener` (or every listener of `event` when omitted). */
  off<E extends keyof Events>(event: E, listener?: Events[E]): void;
}

/** Callbacks of `subscribe` (Meteor's shape). */
export interface DDPSubscribeCallbacks {
  onReady?: () => void;
  /** Called once when the subscription ends: with the server's error, or without when stopped. */
  onStop?: (error?: DDPMethodError) => void;
}

/** A document: its fields (EJSON-decoded) and `_id`. */
export type DDPDocument = { _id: string } & Record<string, unknown>;

/** One change to a collection. */
export type DDPChange =
  | { type: "added"; id: string; fields: Record<string, unknown> }
  | { type: "changed"; id: string; fields: Record<string, unknown>; cleared: string[] }
  | { type: "removed"; id: string };

/**
 * A Mongo selector, as minimongo reads it: `{field: value}` (an array field
 * matches when it contains the value), dotted paths (`"a.b"`), RegExp
 * values, and `$eq $ne $gt $gte $lt $lte $in $nin $exists $and $or $nor
 * $not $regex $options $size $all $elemMatch $comment`. A string is an `_id`.
 * Any other operator throws a DDPError with code `unsupported-operator`.
 */
export type DDPSelector = Record<string, unknown> | string;

/** Options of `find`, `findOne`, `observe` and `observeChanges`. */
export interface DDPFindOptions {
  /** `{field: 1 | -1}` (in key order), or `[["field", "asc" | "desc"], …]`. Ties sort by `_id`. */
  sort?: Record<string, 1 | -1 | "asc" | "desc"> | Array<string | [string, "asc" | "desc"]>;
  skip?: number;
  /** At most this many results (0: no limit). */
  limit?: number;
  /** Include (`{a: 1}`) or exclude (`{a: 0}`) fields; `_id` stays unless `_id: 0`. */
  fields?: Record<string, 0 | 1 | boolean>;
  /** The same as `fields`. */
  projection?: Record<string, 0 | 1 | boolean>;
}

/** Callbacks of `observe` (Meteor's): documents, with positions for ordered results. */
export interface DDPObserveCallbacks {
  /** A document came in at `atIndex`, before the document with `_id` `before` (`null`: last). The initial results arrive this way, in order. */
  addedAt?(document: DDPDocument, atIndex: number, before: string | null): void;
  /** The document at `atIndex` changed. */
  changedAt?(newDocument: DDPDocument, oldDocument: DDPDocument, atIndex: number): void;
  /** The document at `atIndex` left the results. */
  removedAt?(oldDocument: DDPDocument, atIndex: number): void;
  /** A document moved from `fromIndex` to `toIndex`, now before `before`. */
  movedTo?(document: DDPDocument, fromIndex: number, toIndex: number, before: string | null): void;
  /** Unordered forms, used when the `…At` form is not given. */
  added?(document: DDPDocument): void;
  changed?(newDocument: DDPDocument, oldDocument: DDPDocument): void;
  removed?(oldDocument: DDPDocument): void;
}

/** Callbacks of `observeChanges` (Meteor's): ids and changed fields. */
export interface DDPObserveChangesCallbacks {
  added?(id: string, fields: Record<string, unknown>): void;
  /** Ordered form of `added` (used when given): `before` is the next result's `_id`, or `null`. */
  addedBefore?(id: string, fields: Record<string, unknown>, before: string | null): void;
  /** The fields that changed; a removed field is `undefined`. */
  changed?(id: string, fields: Record<string, unknown>): void;
  removed?(id: string): void;
  /** The document moved before `before` (`null`: to the end). */
  movedBefore?(id: string, before: string | null): void;
}

/** Who logs in with a password: a username (an email if it contains "@"), or one of these. */
export type DDPUserSelector = string | { username: string } | { email: string } | { id: string };

/** Options of `createUser` (Meteor's `Accounts.createUser`); the password is sent hashed. */
export interface DDPCreateUserOptions {
  username?: string;
  email?: string;
  password: string;
  profile?: Record<string, unknown>;
}

/** Options of `persistLogin`. */
export interface DDPPersistLoginOptions {
  /** Use Meteor's bare keys (those of the page's own Meteor app) instead of the `:<url>`-suffixed ones of a `DDP.connect` connection (default false). */
  ownApp?: boolean;
}

/** Options of `client.connect(roomId, options)`: given to the server's middleware. */
export interface RoomJoinOptions {
  auth?: unknown;
  query?: Record<string, unknown>;
}

/** Events of a room connection: a DDP connection's, plus `message`. */
export interface RoomConnectionEvents extends DDPConnectionEvents {
  message: (data: unknown, type?: string) => void;
}

// ---- the sink: everything the wasm says ---------------------------------------

type Fn = (kind: number, text: string) => string | void;

// Kinds (the same numbers as src/js/mod.rs).
const RELEASE = 0;
const VALUE = 1;
const RUN_STUB = 40;

/** The functions the wasm holds ids of; once-functions are forgotten when called. */
const fns = new Map<number, [Fn, boolean]>();
let lastFn = 0;

function reg(f: Fn, once = false): number {
  fns.set(++lastFn, [f, once]);
  return lastFn;
}

function sink(id: number, kind: number, text: string): string | undefined {
  const e = fns.get(id);
  if (e && (kind === RELEASE || e[1])) fns.delete(id);
  // Nothing thrown may cross into the wasm: every listener runs in `safe`.
  if (e && kind !== RELEASE) return e[0](kind, text) || undefined;
}

/** Calls an app's listener; an exception in it is reported, never thrown on. */
function safe(f: unknown, ...args: unknown[]): void {
  try {
    (f as (...a: unknown[]) => void)(...args);
  } catch (e) {
    console.error("ddp-live: a listener threw", e);
  }
}

// ---- errors -------------------------------------------------------------------

type Fields = Record<string, unknown>;

/** An Error from the fields the wasm wrote (name, message, code or Meteor.Error's). */
function toError(o: Fields): Error {
  const e = new Error(o.message as string) as Error & Fields;
  for (const k in o) if (k !== "message") e[k] = k === "details" || k === "error" || k === "offendingMessage" ? revive(o[k]) : o[k];
  return e;
}

/** The error of the export that just failed. */
const lastError = (): Error => {
  const text = w.err();
  // Nothing said: the handle is gone (freed, or its connection closed).
  return text ? toError(JSON.parse(text)) : ddpError("closed", "the object was freed or its connection closed");
};

function ddpError(code: string, message: string): DDPError {
  return toError({ name: "DDPError", code, message }) as DDPError;
}

function methodError(error: string, reason: string): DDPMethodError {
  return toError({ name: "DDPMethodError", message: `${reason} [${error}]`, errorType: "Meteor.Error", error, reason }) as DDPMethodError;
}

const invalid = (message: string): DDPError => ddpError("invalid-options", `invalid options: ${message}`);
const badArgument = (message: string): DDPError => ddpError("invalid-argument", message);

function needFunction(f: unknown, what: string): void {
  if (typeof f !== "function") throw badArgument(`${what} needs a function`);
}

const isObject = (v: unknown): v is Fields => Object(v) === v;

// ---- EJSON ------------------------------------------------------------------------

/** Custom types: name → factory. */
const types = new Map<string, (jsonValue: unknown) => unknown>();

/** Why a value is not sent: `bad` says why, or none when it is too large. */
class Refused {
  constructor(readonly bad?: string) {}
}

const text = (e: unknown): string => (e instanceof Refused ? e.bad || "the value is too large" : String(e));

function number(n: number): string {
  return n === n && n !== Infinity && n !== -Infinity ? JSON.stringify(n) : `{"$InfNaN":${n > 0 ? 1 : n < 0 ? -1 : 0}}`;
}

function base64(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}

/**
 * `v` as EJSON text. Functions, symbols and bigints cannot be sent, nor
 * values nested deeper than 128 levels (cycles), nor values whose reading
 * throws (a getter, a Proxy). Gives up (Refused, not bad) as soon as its
 * strings and keys add up to more than `budget`. `plain`: a selector's
 * objects of operators (`{$gt: 1}`) are never escaped.
 */
function ejson(v: unknown, budget = Infinity, plain = false): string {
  const go = (v: unknown, depth: number): string => {
    if (depth > 128) throw new Refused("the value is nested too deeply (a cycle?)");
    if (--budget < 0) throw new Refused();
    if (v == null) return "null";
    switch (typeof v) {
      case "boolean":
        return v ? "true" : "false";
      case "number":
        return number(v);
      case "string":
        if ((budget -= v.length) < 0) throw new Refused();
        return JSON.stringify(v);
      case "function":
      case "symbol":
      case "bigint":
        throw new Refused(`a ${typeof v} cannot be sent`);
    }
    const o = v as Fields;
    let parts: string[] = [];
    try {
      if (o instanceof Date) return `{"$date":${number(o.getTime())}}`;
      if (o instanceof Uint8Array) {
        if ((budget -= o.length) < 0) throw new Refused();
        return `{"$binary":"${base64(o)}"}`;
      }
      if (o instanceof RegExp) return `{"$regexp":${JSON.stringify(o.source)},"$flags":${JSON.stringify(o.flags)}}`;
      if (Array.isArray(o)) {
        for (let i = 0; i < o.length; i++) parts.push(go(o[i], depth + 1));
        return `[${parts}]`;
      }
      if (typeof o.typeName === "function" && typeof o.toJSONValue === "function") {
        return `{"$type":${JSON.stringify(String(o.typeName()))},"$value":${go(o.toJSONValue(), depth + 1)}}`;
      }
      let special = true;
      for (const [k, x] of Object.entries(o)) {
        if (x === undefined) continue; // as JSON.stringify does
        if ((budget -= k.length) < 0) throw new Refused();
        special &&= k[0] === "$";
        parts.push(`${JSON.stringify(k)}:${go(x, depth + 1)}`);
      }
      const body = `{${parts}}`;
      return !plain && special && parts.length && parts.length < 3 ? `{"$escape":${body}}` : body;
    } catch (e) {
      if (e instanceof Refused) throw e;
      let what = "an exception";
      try {
        what = String(e && (e as Error).message !== undefined ? (e as Error).message : e);
      } catch {}
      throw new Refused(`reading the value threw: ${what}`);
    }
  };
  return go(v, 0);
}

/** Sets `o[k]`, as JSON.parse would: a key `__proto__` is an own property, never the prototype. */
function put(o: Fields, k: string, v: unknown): void {
  if (k === "__proto__") Object.defineProperty(o, k, { value: v, writable: true, enumerable: true, configurable: true });
  else o[k] = v;
}

/** The fields of `o` revived in place (its own keys are only names). */
function fields<T extends Fields>(o: T): T {
  for (const k in o) {
    const v = o[k];
    if (typeof v === "object" && v !== null) {
      const r = revive(v);
      if (r !== v) put(o, k, r);
    }
  }
  return o;
}

/** A JSON value (JSON.parse's) as EJSON's JavaScript value: `Date`, `Uint8Array`, `RegExp`, NaN/±Infinity, custom types. */
function revive(v: unknown): unknown {
  if (typeof v !== "object" || v === null) return v;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = revive(v[i]);
    return v;
  }
  const o = v as Fields;
  const keys = Object.keys(o);
  if (keys.length && keys.length < 3 && keys.every((k) => k[0] === "$")) {
    const a = o[keys[0]];
    if (keys.length < 2) {
      switch (keys[0]) {
        case "$date":
          if (typeof a === "number") return new Date(a);
          break;
        case "$binary":
          if (typeof a === "string" && /^[A-Za-z0-9+/]*=*$/.test(a))
            try {
              return Uint8Array.from(atob(a), (c) => c.charCodeAt(0));
            } catch {}
          break;
        case "$InfNaN":
          if (typeof a === "number") return a > 0 ? Infinity : a < 0 ? -Infinity : NaN;
          break;
        case "$escape":
          if (isObject(a) && !Array.isArray(a)) return fields(a);
      }
    } else if (typeof o.$type === "string" && "$value" in o) {
      const value = revive(o.$value);
      const factory = types.get(o.$type);
      if (factory)
        try {
          return factory(value);
        } catch {}
      return { $type: o.$type, $value: value };
    } else if (typeof o.$regexp === "string" && typeof o.$flags === "string") {
      try {
        return new RegExp(o.$regexp, o.$flags);
      } catch {}
      return o;
    }
  }
  return fields(o);
}

const parse = (t: string): unknown => revive(JSON.parse(t));
const doc = (o: unknown): DDPDocument => fields(o as DDPDocument);

/** Meteor's `EJSON`, for custom types. */
export class EJSON {
  private constructor() {}
  /**
   * Registers a custom type: instances need `typeName()` and
   * `toJSONValue()`; `factory(jsonValue)` rebuilds them from the server.
   */
  static addType(name: string, factory: (jsonValue: unknown) => unknown): void {
    needFunction(factory, "EJSON.addType");
    types.set(String(name), factory);
  }
}

// ---- handles ------------------------------------------------------------------------

/** Frees a handle's Rust side when its object is collected. */
// Where there is no FinalizationRegistry (older WebViews), objects are
// freed by free() only.
const registry: { register(o: object, h: number, token?: object): void; unregister(token: object): void } =
  typeof FinalizationRegistry === "function" ? new FinalizationRegistry<number>((h) => w.free(h)) : { register() {}, unregister() {} };

class Handle {
  /** @internal */
  _h: number;
  /** @internal */
  constructor(h: number) {
    this._h = h;
    registry.register(this, h, this);
  }
  /** Lets go of the Rust side now (the garbage collector does it otherwise). */
  free(): void {
    if (this._h) {
      registry.unregister(this);
      w.free(this._h);
      this._h = 0;
    }
  }
}

/** Returned by `onStatusChange` and the like: call `stop()` to stop the callbacks. */
export class StopHandle extends Handle {
  /** Stops the callbacks; calling it again does nothing. */
  stop(): void {
    w.act(this._h, 0);
  }
}

/** A watch of a value (`what`, see `get` in src/js/mod.rs) of handle `h`: calls `f` at once, then on every change. */
function watch(h: number, what: number, f: unknown, name: string): StopHandle {
  needFunction(f, name);
  return new StopHandle(w.watch(h, what, reg((_, t) => safe(f, JSON.parse(t)))));
}

/** Reads value `what` of handle `h` (JSON). */
const get = (h: number, what: number): any => JSON.parse(w.get(h, what));

// ---- listeners ----------------------------------------------------------------------

/** The events, in the order of their kinds (10 + index) in src/js/mod.rs. */
const EVENTS = ["connect", "disconnect", "error", "reconnect_attempt", "reconnect", "reconnect_failed", "login", "login_failed", "loggedOut", "message"];
// Kind 20: only the offline part's wasm says it.
if (OFFLINE) EVENTS.push("persist");
/** (name accepted, canonical name) of every connection. */
const CONNECTION_EVENTS = [
  ["connect"],
  ["disconnect"],
  ["error"],
  ["reconnect_attempt"],
  ["reconnectAttempts", "reconnect_attempt"],
  ["reconnect"],
  ["reconnect_failed"],
  ["reconnectFailed", "reconnect_failed"],
];
/** (name accepted, canonical name) of a DDPConnection's others: accounts', the offline part's. */
const ACCOUNTS_EVENTS = [["login"], ["login_failed"], ["loginFailed", "login_failed"], ["loggedOut"], ["logout", "loggedOut"], ["persist"]];

/**
 * An object's listeners. The function the wasm calls with its events holds
 * them (not the object): a listener lives as long as the connection does
 * on the Rust side, and the object stays collectable unless a listener
 * refers to it (then it lives until `close()`, as an open WebSocket would).
 */
type Listeners = { l: [string, unknown, boolean][] };

/** A function for the wasm that hands events to a new list of listeners. */
function events(): [number, Listeners] {
  const box: Listeners = { l: [] };
  return [
    reg((kind, t) => {
      const name = EVENTS[kind - 10];
      const args = JSON.parse(t || "[]");
      if (name === "error" || name === "login_failed") args[0] = toError(args[0]);
      if (name === "message") {
        args[0] = revive(args[0]);
        if (args[1] === null) args[1] = undefined;
      }
      if (OFFLINE && name === "persist") {
        const ev = args[0];
        if (ev.error) ev.error = toError(ev.error);
        if ("result" in ev) ev.result = revive(ev.result);
      }
      // Once-listeners go before any runs; a listener added meanwhile waits for the next event.
      const now = box.l.filter((l) => l[0] === name);
      box.l = box.l.filter((l) => !(l[2] && l[0] === name));
      for (const l of now) safe(l[1], ...args);
    }),
    box,
  ];
}

class Emitter<Events> extends Handle implements DDPEmitter<Events> {
  /** @internal */
  _e: Listeners;
  /** @internal */
  _names: string[][];
  /** @internal */
  constructor([h, e]: [number, Listeners], names: string[][]) {
    super(h);
    this._e = e;
    this._names = names;
  }
  /** @internal */
  _canonical(event: unknown): string | undefined {
    const n = this._names.find((n) => n[0] === event);
    return n && (n[1] || n[0]);
  }
  /** @internal */
  _add(event: unknown, listener: unknown, once: boolean): void {
    const name = this._canonical(event);
    if (!name) throw ddpError("unknown-event", `unknown event "${String(event)}"; known events: ${this._names.map((n) => n[0]).join(", ")}`);
    this._e.l.push([name, listener, once]);
  }
  /** Calls `listener` every time `event` happens. */
  on<E extends keyof Events>(event: E, listener: Events[E]): void {
    this._add(event, listener, false);
  }
  /** Calls `listener` the next time `event` happens, once. */
  once<E extends keyof Events>(event: E, listener: Events[E]): void {
    this._add(event, listener, true);
  }
  /** Removes `listener` (or every listener of `event` when omitted). */
  off<E extends keyof Events>(event: E, listener?: Events[E]): void {
    const name = this._canonical(event);
    this._e.l = this._e.l.filter(([n, f]) => n !== name || (listener !== undefined && f !== listener));
  }
}

// ---- options -------------------------------------------------------------------------

const OPTION_KEYS = ["heartbeatInterval", "heartbeatTimeout", "connectTimeout", "retry", "maxRetries", "versions", "maxFrameBytes", "watchPage", "maxPendingCalls", "maxPendingBytes", "resumeSessions", "persist", "shareAcrossTabs"];
const RETRY_KEYS = ["minCount", "minTimeout", "baseTimeout", "exponent", "maxTimeout", "fuzz"];
const APPLY_KEYS = ["wait", "noRetry", "onResultReceived", "timeoutMs", "signal", "returnStubValue", "throwStubExceptions"];

function checkKeys(o: unknown, prefix: string, known: string[]): void {
  if (!isObject(o)) throw invalid(`${prefix}options must be an object`);
  for (const k of Object.keys(o)) if (!known.includes(k)) throw invalid(`unknown option "${prefix}${k}"; known options: ${known.join(", ")}`);
}

/** The offline part's options as its wasm takes them: the store name (none: undefined) and `shareAcrossTabs`. */
type OfflineOptions = [string | undefined, boolean];

/** The core part (`ddp-live/core`) asked for what only the complete package has. */
const noPart = (what: string): never => {
  throw ddpError("part-not-loaded", `${what}: import from "ddp-live" (the complete package) instead of "ddp-live/core"`);
};

/** The typed error of the core module asked for what only the offline part has. */
const offlineNeeded = (): DDPError =>
  ddpError("offline-not-loaded", 'import from "ddp-live/offline" for persist and shareAcrossTabs');

/** `persist` and `shareAcrossTabs`, checked (offline part). */
function offlineOptions(v: Fields): OfflineOptions {
  const p = v.persist;
  const share = v.shareAcrossTabs;
  if (p != null && typeof p !== "boolean" && (typeof p !== "string" || !p)) throw invalid("persist must be true, false or a store name");
  if (share != null && typeof share !== "boolean") throw invalid("shareAcrossTabs must be true or false");
  return [p === true ? "default" : p || undefined, !!share];
}

/**
 * Connect options as the wasm takes them: numbers in a fixed order (NaN:
 * the default; see `options` in src/js/mod.rs), the versions, one a line,
 * and the offline part's.
 */
function options(o: unknown): [Float64Array, string, OfflineOptions?] {
  const out = new Float64Array(15).fill(NaN);
  if (o == null) return [out, ""];
  checkKeys(o, "", OPTION_KEYS);
  const v = o as Fields;
  // Never ignored: the core module refuses them with a typed error.
  if (!OFFLINE && (v.persist || v.shareAcrossTabs)) throw offlineNeeded();
  const read = (obj: Fields, path: string, kind: number): number => {
    const x = obj[path.split(".").pop()!];
    if (x == null) return NaN;
    if (kind === 2) {
      if (typeof x !== "boolean") throw invalid(`${path} must be true or false`);
      return +x;
    }
    if (typeof x !== "number") throw invalid(`${path} must be a number`);
    if (kind && !(x >= 0 && x % 1 === 0 && x <= Number.MAX_SAFE_INTEGER)) throw invalid(`${path} must be a whole number ≥ 0`);
    return x;
  };
  if (v.retry != null) {
    checkKeys(v.retry, "retry.", RETRY_KEYS);
    RETRY_KEYS.forEach((k, i) => (out[3 + i] = read(v.retry as Fields, `retry.${k}`, +!i)));
  }
  let versions = "";
  if (v.versions != null) {
    const list = v.versions;
    if (!Array.isArray(list) || list.some((x) => typeof x !== "string")) throw invalid("versions must be an array of strings");
    versions = list.join("\n");
  }
  out[0] = read(v, "heartbeatInterval", 0);
  out[1] = read(v, "heartbeatTimeout", 0);
  out[2] = read(v, "connectTimeout", 0);
  out[9] = read(v, "maxRetries", 1);
  out[10] = read(v, "maxFrameBytes", 1);
  out[11] = read(v, "watchPage", 2);
  out[12] = read(v, "maxPendingCalls", 1);
  out[13] = read(v, "maxPendingBytes", 1);
  out[14] = read(v, "resumeSessions", 2);
  return OFFLINE ? [out, versions, offlineOptions(v)] : [out, versions];
}

// ---- connections -----------------------------------------------------------------------

/** Entry point of the JavaScript API, as in Meteor: `DDP.connect(url, options)`. */
export class DDP {
  private constructor() {}
  /**
   * Opens a connection to `url` (Meteor's URL rules) and starts
   * connecting at once. Throws a `DDPError` with code "invalid-url" or
   * "invalid-options" (or "offline-not-loaded": `persist` or
   * `shareAcrossTabs` given to the core module).
   */
  static connect(url: string, options?: DDPConnectOptions | null): DDPConnection {
    const [o, versions, off] = optionsOf(options);
    const [f, e] = events();
    const h = OFFLINE ? w.connect_offline(String(url), o, versions, off && off[0], !!off && off[1], f) : w.connect(String(url), o, versions, f);
    if (!h) throw lastError();
    return new DDPConnection(h, e);
  }

  /**
   * Runs `callback` on every reconnect (new session) of every connection,
   * after the connection's own hooks. Calls made inside go ahead of
   * everything queued.
   */
  static onReconnect(callback: () => void): StopHandle {
    needFunction(callback, "DDP.onReconnect");
    return new StopHandle(w.hook(0, reg(() => safe(callback))));
  }
}

const optionsOf = options;

/** The calls running now, innermost last: what their stubs returned or threw. */
const frames: { v?: unknown; e?: unknown; threw?: boolean }[] = [];

/** Runs a JavaScript stub for the wasm: its value's EJSON text, or `!` and what it threw. */
function runStub(f: Function, name: string, args: string): string {
  const frame = frames[frames.length - 1] || {};
  let live = true;
  const st = (op: number, a = "", b = "", c = ""): string | undefined => (live ? w.st(op, String(a), String(b), c) : undefined);
  const value = (v: unknown): string => {
    try {
      return ejson(v);
    } catch (e) {
      throw ddpError("bad-arguments", text(e));
    }
  };
  const invocation: DDPMethodInvocation = {
    isSimulation: true,
    name,
    randomSeed: () => st(0)!,
    randomId: (scope) => st(1, scope)!,
    insert: (collection, d) => st(2, collection, "", value(d))!,
    update(collection, id, set) {
      const r = st(3, collection, id, value(set));
      if (r === undefined && live) throw ddpError("bad-arguments", "update() takes an object of fields");
      return r === "true";
    },
    remove: (collection, id) => void st(4, collection, id),
    findOne(collection, id) {
      const r = st(5, collection, id);
      return r === undefined ? undefined : (parse(r) as DDPDocument);
    },
  };
  try {
    const v = (frame.v = f.apply(invocation, parse(args) as unknown[]));
    try {
      return ejson(v);
    } catch {
      return "null";
    }
  } catch (e) {
    frame.e = e;
    frame.threw = true;
    let message = "a JavaScript exception";
    try {
      message = e instanceof Error ? e.message : typeof e === "string" ? e : message;
    } catch {}
    return `!${message}`;
  } finally {
    live = false;
  }
}

export interface DDPConnection extends DDPEmitter<DDPConnectionEvents> {}

/**
 * A connection to a DDP server (JavaScript API). Create it with
 * `DDP.connect(url, options)`.
 */
export class DDPConnection extends Emitter<DDPConnectionEvents> {
  /** @internal */
  constructor(h: number, e: Listeners) {
    super([h, e], CONNECTION_EVENTS.concat(ACCOUNTS_EVENTS));
  }

  /**
   * Calls server method `name` with `args` (EJSON: Date, Uint8Array,
   * RegExp, NaN/Infinity and registered custom types travel as such).
   * Returns a Promise of the result; it rejects with a
   * `DDPMethodError` (shaped like Meteor.Error). A trailing function is a
   * usage error: this API returns a Promise instead of taking a callback.
   */
  call(name: string, ...args: unknown[]): Promise<unknown> {
    if (typeof args[args.length - 1] === "function") {
      throw badArgument("call() returns a Promise and takes no callback (as Meteor.callAsync); use await or .then()");
    }
    return this._apply(name, args);
  }

  /**
   * Calls server method `name` with the array `args` and options
   * (`wait`, `noRetry`, `onResultReceived`, `timeoutMs`, `signal`,
   * `returnStubValue`, `throwStubExceptions`).
   */
  apply(name: string, args?: unknown[] | null, options?: DDPApplyOptions | null): Promise<unknown> {
    if (args != null && !Array.isArray(args)) throw badArgument("apply() takes the arguments as an array");
    const f = isObject(options) ? options.onResultReceived : undefined;
    if (f !== undefined && typeof f !== "function") throw ddpError("invalid-options", "onResultReceived must be a function");
    return this._apply(name, args || [], options);
  }

  /** @internal */
  _apply(name: string, args: unknown[], options?: DDPApplyOptions | null): Promise<unknown> {
    if (options != null) checkKeys(options, "apply options: ", APPLY_KEYS);
    const o: DDPApplyOptions = isObject(options) ? options : {};
    const signal = o.signal;
    if (signal && signal.aborted) return Promise.reject(methodError("cancelled", "The call was cancelled before it was sent"));
    // A full outbox refuses the call before its arguments are read; reading
    // stops once they are larger than the room left.
    const room = w.room(this._h);
    if (room < 0) return Promise.reject(lastError());
    let params: string;
    try {
      params = ejson(args, room);
    } catch (e) {
      return Promise.reject(
        (e as Refused).bad !== undefined
          ? methodError("bad-arguments", `The arguments could not be encoded: ${text(e)}`)
          : methodError("queue-full", "The outbox is full (maxPendingBytes); the call was not queued"),
      );
    }
    const frame: (typeof frames)[0] = {};
    const returnStub = !!o.returnStubValue;
    let resolve!: (v: unknown) => void, reject!: (e: unknown) => void;
    const promise = new Promise((ok, fail) => ((resolve = ok), (reject = fail)));
    let cleanup = (): void => {};
    const done = reg((kind, t) => {
      cleanup();
      if (kind === VALUE) resolve(t ? parse(t) : undefined);
      else if (returnStub && !frame.threw && "v" in frame) console.error("ddp-live: a call whose stub value was returned failed on the server", toError(JSON.parse(t)));
      else reject(toError(JSON.parse(t)));
    }, true);
    const f = o.onResultReceived;
    const onResult = f ? reg((kind, t) => safe(f, kind === VALUE ? undefined : toError(JSON.parse(t)), kind === VALUE && t ? parse(t) : undefined), true) : 0;
    const flags = +!!o.wait | (+!!o.noRetry << 1) | (+returnStub << 2) | (+!!o.throwStubExceptions << 3);
    const timeout = typeof o.timeoutMs === "number" ? o.timeoutMs : NaN;
    frames.push(frame);
    let r: string;
    try {
      r = w.apply(this._h, String(name), params, flags, timeout, done, onResult);
    } finally {
      frames.pop();
    }
    if (r[0] === "!") return Promise.reject(toError(JSON.parse(r.slice(1))));
    if (r[0] === "t") return Promise.reject(frame.threw ? frame.e : ddpError("stub-failed", r.slice(1)));
    if (signal) {
      // The listener holds the handle's number, not the connection.
      const h = this._h;
      const id = +r.slice(1);
      const abort = (): void => w.cancel(h, id);
      signal.addEventListener("abort", abort);
      cleanup = () => signal.removeEventListener("abort", abort);
    }
    return r[0] === "s" ? Promise.resolve(frame.v) : promise;
  }

  /**
   * Defines client stubs: `methods({ name(...args) { ... } })`. A stub runs
   * locally at call time (with `this.isSimulation`, `this.randomSeed()`,
   * `this.randomId(scope)`), before the server answers.
   */
  methods(stubs: Record<string, (this: DDPMethodInvocation, ...args: unknown[]) => unknown>): void {
    if (!isObject(stubs)) throw badArgument("methods() takes an object of functions");
    for (const [name, f] of Object.entries(stubs)) {
      needFunction(f, `methods(): "${name}"`);
      w.stub(this._h, name, reg((kind, t) => (kind === RUN_STUB ? runStub(f, name, t) : undefined)));
    }
  }

  /**
   * Runs `callback` when a new session replaces a lost one (not when the
   * server resumed the session). Calls made inside go ahead of
   * everything queued (e.g. a login).
   */
  onReconnect(callback: () => void): StopHandle {
    needFunction(callback, "onReconnect");
    return new StopHandle(w.hook(this._h, reg(() => safe(callback))));
  }

  /** Queued and in-flight method calls now. */
  outbox(): DDPOutbox {
    return get(this._h, 1);
  }

  /** Calls `callback` at once with the outbox counts, then on every change. */
  onOutboxChange(callback: (outbox: DDPOutbox) => void): StopHandle {
    return watch(this._h, 1, callback, "onOutboxChange");
  }

  // ---- the offline part (`ddp-live/offline`); the core module throws "offline-not-loaded"

  /**
   * The calls the durable outbox keeps now (`persist`), oldest first: this
   * page's and those an earlier page left. Empty without `persist`.
   */
  persistedCalls(): DDPPersistedCall[] {
    return offline(this, 11);
  }

  /** Calls `callback` at once with `persistedCalls()`, then on every change (its length: "3 changes waiting"). */
  onPersistedCallsChange(callback: (calls: DDPPersistedCall[]) => void): StopHandle {
    return offline(this, 5, callback);
  }

  /**
   * Cancels the kept call of `key` if it has not been sent: forgotten (a
   * call of this page rejects with "cancelled"; an earlier page's settles
   * "cancelled"; one waiting for its user goes). Returns whether it was.
   */
  cancelPersistedCall(key: string): boolean {
    return offline(this, -1, key);
  }

  /**
   * True while the documents shown are the durable cache's (`persist`),
   * not confirmed by the server yet: from the start until every
   * subscription is ready again, offline too. False without `persist`.
   */
  get stale(): boolean {
    return offline(this, 10);
  }

  /** Calls `callback` at once with `stale`, then on every change. */
  onStaleChange(callback: (stale: boolean) => void): StopHandle {
    return offline(this, 4, callback);
  }

  /**
   * Subscribes to publication `name` with `params`; a last argument that
   * is a function is `onReady`, an object of callbacks gives `onReady`
   * and `onStop(error?)`. The subscription is re-sent after reconnects
   * until `stop()`.
   */
  subscribe(name: string, ...args: [...params: unknown[], callbacks: DDPSubscribeCallbacks | (() => void)]): DDPSubscription;
  subscribe(name: string, ...params: unknown[]): DDPSubscription;
  subscribe(name: string, ...args: unknown[]): DDPSubscription {
    // Meteor's rule: a last argument that is a function is onReady; an
    // object whose keys are all callbacks holds onReady / onStop.
    let onReady: unknown, onStop: unknown;
    const last = args[args.length - 1] as Fields;
    if (typeof last === "function") onReady = args.pop();
    else if (isObject(last) && !Array.isArray(last)) {
      const keys = Object.keys(last);
      if (keys.length && keys.every((k) => ["onReady", "onStop", "onError"].includes(k) && typeof last[k] === "function")) {
        onReady = last.onReady;
        onStop = last.onStop || last.onError;
        args.pop();
      }
    }
    let params: string;
    try {
      params = ejson(args);
    } catch (e) {
      throw ddpError("bad-arguments", `subscribe(): ${text(e)}`);
    }
    const ready = onReady ? reg(() => safe(onReady)) : 0;
    const stop = onStop ? reg((kind, t) => (kind === VALUE ? safe(onStop) : safe(onStop, toError(JSON.parse(t))))) : 0;
    return new DDPSubscription(w.subscribe(this._h, String(name), params, ready, stop));
  }

  /** The live collection `name`. */
  collection(name: string): DDPCollection {
    return new DDPCollection(w.collection(this._h, String(name)));
  }

  /** Whether the last `connected` resumed the previous session. */
  get resumed(): boolean {
    return get(this._h, 2);
  }

  /** The current status: a plain object with Meteor's fields. */
  status(): DDPStatus {
    return get(this._h, 0);
  }

  /**
   * Calls `callback` at once with the current status, then on every
   * change, until `stop()` is called on the returned handle.
   */
  onStatusChange(callback: (status: DDPStatus) => void): StopHandle {
    return watch(this._h, 0, callback, "onStatusChange");
  }

  /** Retry now (does nothing while connected; not counted in `retryCount`). */
  reconnect(): void {
    w.act(this._h, 0);
  }

  /**
   * Close the link and stay `offline` until `reconnect()`. Sends
   * `{"msg":"disconnect"}` first (see the Rust `Connection::disconnect`).
   */
  disconnect(): void {
    w.act(this._h, 1);
  }

  /** Disconnect for good and release every browser listener. */
  close(): void {
    w.act(this._h, 2);
    this._e.l = [];
  }

  /** The session id from the server; `undefined` while not connected. */
  get id(): string | undefined {
    return get(this._h, 3) ?? undefined;
  }

  /** True while the DDP session is up. */
  get connected(): boolean {
    return get(this._h, 4);
  }

  /** The WebSocket URL in use. */
  get url(): string {
    return get(this._h, 5);
  }

  // ---- accounts

  /** @internal */
  _login(how: number, a: string, b: string): Promise<string> {
    return FULL
      ? new Promise((ok, fail) => w.login(this._h, how, a, b, reg((kind, t) => (kind === VALUE ? ok(JSON.parse(t)) : fail(toError(JSON.parse(t)))), true)))
      : noPart("accounts");
  }

  /**
   * Logs in with a password (Meteor's `loginWithPassword`): sent as its
   * SHA-256 digest, never in clear. A `wait` method: calls made meanwhile
   * go out after it. Resolves to the user id once the user's document is
   * in (`user()` returns it; the wait is bounded: `setLoginUserWait`);
   * rejects with the server's error (403).
   */
  loginWithPassword(user: DDPUserSelector, password: string): Promise<string> {
    let how = 0;
    let name = user as string;
    if (typeof user !== "string") {
      const keys = isObject(user) ? Object.keys(user) : [];
      how = keys.length === 1 ? ["username", "email", "id"].indexOf(keys[0]) + 1 : 0;
      name = (user as Fields)[keys[0]] as string;
      if (!how || typeof name !== "string") throw badArgument("the user is a string, or one of {username}, {email}, {id}");
    }
    if (typeof password !== "string") throw badArgument("loginWithPassword: the password must be a string");
    return this._login(how, name, password);
  }

  /**
   * Logs in with a resume token (Meteor's `loginWithToken`); settles as
   * `loginWithPassword`.
   */
  loginWithToken(token: string): Promise<string> {
    return this._login(4, String(token), "");
  }

  /**
   * Creates a user and logs in as it (Meteor's `Accounts.createUser`);
   * settles as `loginWithPassword`.
   */
  createUser(options: DDPCreateUserOptions): Promise<string> {
    const o = (isObject(options) ? options : {}) as Fields;
    const user: Fields = {};
    if (o.profile != null) {
      try {
        user.profile = JSON.parse(ejson(o.profile));
      } catch (e) {
        throw badArgument(text(e));
      }
    }
    for (const k of ["username", "email"]) {
      if (o[k] == null) continue;
      if (typeof o[k] !== "string") throw badArgument(`createUser: ${k} must be a string`);
      user[k] = o[k];
    }
    if (typeof o.password !== "string") throw badArgument("createUser: the password must be a string");
    return this._login(5, JSON.stringify(user), o.password);
  }

  /** @internal */
  _logout(others: boolean): Promise<void> {
    return FULL
      ? new Promise((ok, fail) => w.logout(this._h, others, reg((kind, t) => (kind === VALUE ? ok() : fail(toError(JSON.parse(t)))), true)))
      : noPart("accounts");
  }

  /**
   * Logs out (Meteor's `logout`): `userId()` becomes null, the stored
   * token is removed and the user document goes.
   */
  logout(): Promise<void> {
    return this._logout(false);
  }

  /** Logs out every other client of this user (Meteor's `logoutOtherClients`). */
  logoutOtherClients(): Promise<void> {
    return this._logout(true);
  }

  /**
   * How long a successful login waits for the user's document before it
   * settles without it (ms; default 5000; 0: settle with the result).
   */
  setLoginUserWait(ms: number): void {
    FULL ? w.user_wait(this._h, +ms) : noPart("accounts");
  }

  /** The logged-in user's id, or null. */
  userId(): string | null {
    return FULL ? get(this._h, 6) : noPart("accounts");
  }

  /** True while a login the app asked for runs. */
  loggingIn(): boolean {
    return FULL ? get(this._h, 7) : noPart("accounts");
  }

  /**
   * The current user's document (from the `users` collection the
   * server publishes to a logged-in client), or null.
   */
  user(): DDPDocument | null {
    return FULL ? (revive(get(this._h, 8)) as DDPDocument | null) : noPart("accounts");
  }

  /** The resume token of the current login, or null. */
  loginToken(): string | null {
    return FULL ? get(this._h, 9) : noPart("accounts");
  }

  /** Calls `callback` at once with the user id, then on every change, until `stop()`. */
  onUserIdChange(callback: (userId: string | null) => void): StopHandle {
    return FULL ? watch(this._h, 2, callback, "onUserIdChange") : noPart("accounts");
  }

  /** Calls `callback` at once with `loggingIn()`, then on every change. */
  onLoggingInChange(callback: (loggingIn: boolean) => void): StopHandle {
    return FULL ? watch(this._h, 3, callback, "onLoggingInChange") : noPart("accounts");
  }

  /**
   * Keeps the login in `localStorage` under Meteor's keys
   * (`Meteor.loginToken`, `Meteor.loginTokenExpires`, `Meteor.userId`,
   * suffixed `:<url>` unless `ownApp`), and logs in with the login stored
   * there, if any that is not about to expire (an expiring one is
   * removed, never sent). Returns whether a stored login is resumed.
   */
  persistLogin(options?: DDPPersistLoginOptions | null): boolean {
    if (options != null) checkKeys(options, "persistLogin: ", ["ownApp"]);
    return FULL ? w.persist_login(this._h, !!(isObject(options) && options.ownApp)) : noPart("accounts");
  }
}

/**
 * The offline part's readings of connection `c`: `get` (`what` 10, 11; see
 * src/js/mod.rs), `watch` (4, 5: calling `f`), or cancelling the kept call
 * of key `f` (-1). The core module has none of them.
 */
const offline: (c: DDPConnection, what: number, f?: unknown) => any = OFFLINE
  ? (c, what, f) =>
      what < 0 ? w.cancel_kept(c._h, String(f)) : what < 10 ? watch(c._h, what, f, what < 5 ? "onStaleChange" : "onPersistedCallsChange") : get(c._h, what)
  : () => {
      throw offlineNeeded();
    };

/** A subscription (JavaScript API). */
export class DDPSubscription extends Handle {
  /** The DDP subscription id. */
  get subscriptionId(): string {
    return get(this._h, 0);
  }

  /** True once the server said `ready`; stays true across reconnects. */
  ready(): boolean {
    return get(this._h, 1);
  }

  /** Calls `callback` at once with the readiness, then on every change. */
  onReadyChange(callback: (ready: boolean) => void): StopHandle {
    return watch(this._h, 0, callback, "onReadyChange");
  }

  /** Stops the subscription (not re-sent after reconnects; its documents go). */
  stop(): void {
    w.act(this._h, 0);
  }
}

/** A selector or options as the wasm reads them (`undefined`: none). */
function query(v: unknown, what: string): string | undefined {
  try {
    return v === undefined ? undefined : ejson(v, Infinity, true);
  } catch (e) {
    throw ddpError("bad-options", `${what}: ${text(e)}`);
  }
}

const OBSERVE = ["addedAt", "changedAt", "removedAt", "movedTo", "added", "changed", "removed"];
const OBSERVE_CHANGES = ["addedBefore", "changed", "removed", "movedBefore", "added"];

/** A live collection (JavaScript API). */
export class DDPCollection extends Handle {
  /** The collection's name. */
  get name(): string {
    return get(this._h, 0);
  }

  /** How many documents. */
  count(): number {
    return get(this._h, 1);
  }

  /** @internal */
  _find(selector: unknown, options: unknown, one: boolean): DDPDocument[] {
    const r = w.find(this._h, query(selector, "selector"), query(options, "options"), one);
    if (r === undefined) throw lastError();
    return (JSON.parse(r) as unknown[]).map(doc);
  }

  /** Every document (by `_id`), or those matching `selector`, sorted, skipped, limited and projected by `options`. Throws a DDPError (`unsupported-operator`, `bad-selector`, `bad-regex`, `bad-options`) for a query it cannot run. */
  find(selector?: DDPSelector, options?: DDPFindOptions): DDPDocument[] {
    return this._find(selector, options, false);
  }

  /** The document with this `_id`, or the first matching `selector`; `undefined` when none. */
  findOne(idOrSelector?: DDPSelector, options?: DDPFindOptions): DDPDocument | undefined {
    return this._find(idOrSelector, options, true)[0];
  }

  /** Calls `callback` with every change (`added`, `changed`, `removed`) until `stop()` is called on the returned handle. */
  onChange(callback: (change: DDPChange) => void): StopHandle {
    needFunction(callback, "onChange");
    return new StopHandle(
      w.on_change(
        this._h,
        reg((_, t) => {
          const c = JSON.parse(t);
          if (c.fields) fields(c.fields);
          safe(callback, c);
        }),
      ),
    );
  }

  /** @internal */
  _observe(selector: unknown, options: unknown, callbacks: unknown, what: string, names: string[], changes: boolean): StopHandle {
    const sel = query(selector, "selector");
    const opts = query(options, "options");
    if (typeof callbacks !== "object" || callbacks === null) throw badArgument(`${what} needs an object of callbacks`);
    // Per diff kind (added, changed, removed, moved): the callback, else its other form.
    const cb = names.map((n) => {
      const f = (callbacks as Fields)[n];
      if (f != null && typeof f !== "function") throw badArgument(`callback ${n} must be a function`);
      return f;
    });
    const pick = (k: number): unknown => cb[k] || cb[k + 4];
    let mask = 0;
    for (let k = 0; k < 4; k++) if (pick(k)) mask |= 1 << k;
    const h = !FULL
      ? noPart("live queries")
      : w.observe(
          this._h,
          sel,
          opts,
          changes,
          mask,
          reg((kind, t) => {
            const k = kind % 10;
            const a = JSON.parse(t);
            const f = cb[k] || cb[k + 4];
            if (changes) {
              if (k < 2) fields(a[1]);
              if (k === 1) for (const key of a.pop()) put(a[1], key, undefined);
              // added(id, fields) has no `before`.
              if (!cb[k] && k === 0) a.pop();
            } else {
              for (const i of k === 1 ? [0, 1] : [0]) doc(a[i]);
              // The unordered forms get the documents alone.
              if (!cb[k]) a.length = k === 1 ? 2 : 1;
            }
            safe(f, ...a);
          }),
        );
    if (!h) throw lastError();
    return new StopHandle(h);
  }

  /** A live query: the callbacks hear the initial results (in order) at once, then every change of the results, until `stop()`. */
  observe(selector: DDPSelector | undefined, options: DDPFindOptions | undefined, callbacks: DDPObserveCallbacks): StopHandle {
    return this._observe(selector, options, callbacks, "observe", OBSERVE, false);
  }

  /** A live query reporting ids and changed fields (ordered when `addedBefore` or `movedBefore` is given). */
  observeChanges(selector: DDPSelector | undefined, options: DDPFindOptions | undefined, callbacks: DDPObserveChangesCallbacks): StopHandle {
    return this._observe(selector, options, callbacks, "observeChanges", OBSERVE_CHANGES, true);
  }
}

// ---- rooms -----------------------------------------------------------------------------

/** Rooms over one DDP connection (one socket for all rooms). */
export class Client extends Handle {
  /** @internal */
  _c?: DDPConnection;

  /** Connects to the DDP server at `url`; `options` are `DDP.connect`'s. */
  constructor(url: string, options?: DDPConnectOptions | null) {
    const [o, versions, off] = optionsOf(options);
    const h = !FULL
      ? noPart("rooms")
      : OFFLINE
        ? w.client_offline(String(url), o, versions, off && off[0], !!off && off[1])
        : w.client(String(url), o, versions);
    if (!h) throw lastError();
    super(h);
  }

  /** Joins `roomId`; `auth` and `query` go to the server's middleware. */
  connect(roomId: string, options?: RoomJoinOptions | null): Connection {
    const field = (k: string): string => {
      const v = isObject(options) ? (options as Fields)[k] : undefined;
      try {
        return v === undefined ? "null" : ejson(v);
      } catch (e) {
        throw ddpError("invalid-options", `${k}: ${text(e)}`);
      }
    };
    const auth = field("auth");
    const q = field("query");
    const [f, e] = events();
    return new Connection(FULL ? w.join(this._h, String(roomId), auth, q, f) : noPart("rooms"), e);
  }

  /** The DDP connection underneath (status, calls, subscriptions): always the same object. */
  get connection(): DDPConnection {
    if (!this._c) {
      const [f, e] = events();
      this._c = new DDPConnection(FULL ? w.client_connection(this._h, f) : noPart("rooms"), e);
    }
    return this._c;
  }

  /** Leaves every room and closes the socket. */
  close(): void {
    w.act(this._h, 0);
  }
}

export interface Connection extends DDPEmitter<RoomConnectionEvents> {}

/** One room membership (js-collaboration's `Connection`). */
export class Connection extends Emitter<RoomConnectionEvents> {
  /** @internal */
  constructor(h: number, e: Listeners) {
    super([h, e], CONNECTION_EVENTS.concat([["message"]]));
  }

  /** The id the server assigned (20 characters); undefined while not joined. */
  get id(): string | undefined {
    return get(this._h, 0) ?? undefined;
  }

  /** The room's id. */
  get roomId(): string {
    return get(this._h, 1);
  }

  /** True while joined. */
  get connected(): boolean {
    return get(this._h, 2);
  }

  /**
   * Sends `data` (string, number, array, plain object) with an optional
   * type. Queued while offline and delivered in order after the rejoin;
   * the Promise resolves when the server acknowledged it.
   */
  send(data: string | number | boolean | null | unknown[] | Record<string, unknown>, type?: string | null): Promise<true> {
    let value: string;
    try {
      value = ejson(data);
    } catch (e) {
      throw ddpError("bad-arguments", `send(): ${text(e)}`);
    }
    let ok!: (v: true) => void, fail!: (e: unknown) => void;
    const p = new Promise<true>((a, b) => ((ok = a), (fail = b)));
    const r = FULL
      ? w.send(this._h, value, type == null ? undefined : String(type), reg((kind, t) => (kind === VALUE ? ok(true) : fail(toError(JSON.parse(t)))), true))
      : noPart("rooms");
    return r ? Promise.reject(toError(JSON.parse(r.slice(1)))) : p;
  }

  /** Leaves the room; the socket stays for the client's other rooms. */
  close(): void {
    w.act(this._h, 0);
  }
}

// ---- loading --------------------------------------------------------------------

/** What `init` accepts: the .wasm's URL, its bytes, a Response, or a compiled module. */
export type InitInput = RequestInfo | URL | Response | BufferSource | WebAssembly.Module;
export type SyncInitInput = BufferSource | WebAssembly.Module;

/** The instantiated wasm module. */
export interface InitOutput {
  readonly memory: WebAssembly.Memory;
}

/** Loads the wasm module (once); call before anything else. */
export default async function init(
  module_or_path?: { module_or_path: InitInput | Promise<InitInput> } | InitInput | Promise<InitInput>,
): Promise<InitOutput> {
  const out = await wasmInit(module_or_path as Parameters<typeof wasmInit>[0]);
  w.sink(sink);
  return out;
}

/** Instantiates the wasm module from its bytes or a compiled module, synchronously. */
export function initSync(module: { module: SyncInitInput } | SyncInitInput): InitOutput {
  const out = wasmInitSync(module as Parameters<typeof wasmInitSync>[0]);
  w.sink(sink);
  return out;
}
