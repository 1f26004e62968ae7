// Accounts against Meteor's own accounts server: Meteor 3.0.4's ddp-server,
// accounts-base and accounts-password (the fixture ../shared/meteor-accounts,
// started by server/meteor/fixture.mjs), driven through the npm package in
// headless Chromium (the page comes from the test server, as for the other
// JS tests). The behaviours tests/js/accounts.test.mjs checks against the
// test server, checked against Meteor's code. Meteor sends the user's
// document after the login's `result`: a login settles once it is in.
// Without the fixture these tests print one "skipped" line.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { usePage, fast } from "./harness.mjs";
import { findAccountsFixture, ensureAccountsFixtureDeps, startOwnServer } from "../../server/meteor/fixture.mjs";

const fixture = findAccountsFixture();

if (!fixture) {
  console.log("skipped: no Meteor accounts fixture");
  test("accounts on Meteor's own accounts server", { skip: "no Meteor accounts fixture" }, () => {});
} else {
  let app;
  before(async () => {
    ensureAccountsFixtureDeps(fixture);
    app = await startOwnServer(fixture);
  });
  after(async () => app?.stop());
  const inPage = usePage(before, after, assert);
  const control = async (what) => {
    const r = await fetch(`${app.base}/control/${what}`);
    if (!r.ok) throw new Error(`control ${what}: ${r.status} ${await r.text()}`);
    return r.json();
  };
  // Each test has its own user names: the fixture's rate limit counts per connection only.
  let n = 0;
  const name = (what) => `${what}${process.pid}x${++n}`;
  /** Creates `username` with password "pw" from a connection of its own; resolves its id. */
  const createUser = (username) =>
    inPage(async ([url, fast, username]) => {
      const conn = ddp.DDP.connect(url, fast);
      try {
        return await conn.createUser({ username, password: "pw" });
      } finally {
        conn.close();
      }
    }, app.ws, fast, username);

  test("createUser: settles with the user's document in, userId and onUserIdChange agree, no flicker", async () => {
    const username = name("cy");
    const r = await inPage(async ([url, fast, username]) => {
      const conn = ddp.DDP.connect(url, fast);
      const ids = [];
      const busy = [];
      const events = [];
      conn.onUserIdChange((u) => ids.push([u, conn.user()?.username ?? null]));
      conn.onLoggingInChange((b) => busy.push(b));
      conn.on("login", (u) => events.push(["login", u, conn.user()?.username ?? null]));
      const id = await conn.createUser({ username, password: "pw", profile: { name: "Cy" } });
      const out = { id, userId: conn.userId(), user: conn.user(), loggingIn: conn.loggingIn(), ids, busy, events, token: typeof conn.loginToken() };
      out.whoami = await conn.call("whoami");
      conn.close();
      return out;
    }, app.ws, fast, username);
    assert.equal(typeof r.id, "string");
    assert.equal(r.userId, r.id);
    assert.deepEqual(r.user, { _id: r.id, username, profile: { name: "Cy" } }, "user() is the document when createUser resolves");
    assert.deepEqual(r.ids, [[null, null], [r.id, username]], "set once, with the document in");
    assert.deepEqual(r.busy, [false, true, false]);
    assert.deepEqual(r.events, [["login", r.id, username]]);
    assert.equal(r.loggingIn, false);
    assert.equal(r.token, "string");
    assert.equal(r.whoami.userId, r.id);
    // Meteor's order on the wire: updated, result, then the document.
    const wire = await control("wire");
    const session = wire.find((f) => f.dir === "out" && f.frame.msg === "result" && f.frame.result?.id === r.id)?.session;
    const order = wire
      .filter((f) => f.session === session && f.dir === "out" && ["updated", "result", "added"].includes(f.frame.msg))
      .slice(0, 3)
      .map((f) => f.frame.msg);
    assert.deepEqual(order, ["updated", "result", "added"]);
  });

  test("loginWithPassword: a good password, a wrong one and an unknown user", async () => {
    const username = name("ada");
    const id = await createUser(username);
    const r = await inPage(async ([url, fast, username]) => {
      const conn = ddp.DDP.connect(url, fast);
      const failed = [];
      conn.on("loginFailed", (e) => failed.push(e.error));
      const grab = (p) => p.then(() => null, (e) => ({ error: e.error, reason: typeof e.reason, errorType: e.errorType }));
      const wrong = await grab(conn.loginWithPassword(username, "nope"));
      const missing = await grab(conn.loginWithPassword({ username: `${username}-nobody` }, "pw"));
      const after = { userId: conn.userId(), user: conn.user(), loggingIn: conn.loggingIn() };
      const good = await conn.loginWithPassword({ username }, "pw");
      const out = { wrong, missing, after, good, user: conn.user(), userId: conn.userId(), failed, whoami: await conn.call("whoami") };
      conn.close();
      return out;
    }, app.ws, fast, username);
    // Meteor's text is ambiguous by default: only the code is relied on.
    assert.deepEqual(r.wrong, { error: 403, reason: "string", errorType: "Meteor.Error" });
    assert.deepEqual(r.missing, { error: 403, reason: "string", errorType: "Meteor.Error" });
    assert.deepEqual(r.after, { userId: null, user: null, loggingIn: false });
    assert.deepEqual(r.failed, [403, 403]);
    assert.equal(r.good, id);
    assert.equal(r.userId, id);
    assert.deepEqual(r.user, { _id: id, username });
    assert.equal(r.whoami.userId, id);
  });

  test("a resume token on a new connection logs in with the user's document", async () => {
    const username = name("rt");
    const id = await createUser(username);
    const r = await inPage(async ([url, fast, username]) => {
      const first = ddp.DDP.connect(url, fast);
      await first.loginWithPassword(username, "pw");
      const token = first.loginToken();
      first.close();
      const conn = ddp.DDP.connect(url, fast);
      const got = await conn.loginWithToken(token);
      const out = { got, user: conn.user(), token: conn.loginToken() === token, whoami: await conn.call("whoami") };
      out.bad = await conn.loginWithToken("not-a-token").then(() => null, (e) => e.error);
      out.stillIn = conn.userId();
      conn.close();
      return out;
    }, app.ws, fast, username);
    assert.equal(r.got, id);
    assert.deepEqual(r.user, { _id: id, username });
    assert.equal(r.token, true);
    assert.equal(r.whoami.userId, id);
    assert.equal(r.bad, 403);
    assert.equal(r.stillIn, id, "a token the app gave that fails does not log out");
  });

  test("logout: userId null, the user document removed, methods run logged out", async () => {
    const username = name("lo");
    const id = await createUser(username);
    const r = await inPage(async ([url, fast, username]) => {
      const conn = ddp.DDP.connect(url, fast);
      const ids = [];
      conn.onUserIdChange((u) => ids.push(u));
      const events = [];
      conn.on("loggedOut", () => events.push("loggedOut"));
      await conn.loginWithPassword(username, "pw");
      const had = conn.user() !== null;
      await conn.logout();
      const out = { had, ids, events, userId: conn.userId(), user: conn.user(), docs: conn.collection("users").find().length, token: conn.loginToken() };
      out.whoami = await conn.call("whoami");
      conn.close();
      return out;
    }, app.ws, fast, username);
    assert.deepEqual(r, { had: true, ids: [null, id, null], events: ["loggedOut"], userId: null, user: null, docs: 0, token: null, whoami: r.whoami });
    assert.equal(r.whoami.userId, null);
  });

  test("logoutOtherClients (getNewToken + removeOtherTokens): this client keeps a new token, the other is logged out", async () => {
    const username = name("oc");
    const id = await createUser(username);
    const r = await inPage(async ([url, fast, username]) => {
      const a = ddp.DDP.connect(url, fast);
      const b = ddp.DDP.connect(url, fast);
      await a.loginWithPassword(username, "pw");
      await b.loginWithToken(a.loginToken());
      const old = a.loginToken();
      const bEvents = [];
      b.on("login_failed", (e) => bEvents.push(["login_failed", e.error]));
      const bOut = new Promise((res, rej) => {
        b.on("loggedOut", () => res(bEvents.push(["loggedOut"])));
        setTimeout(() => rej(new Error("b was not logged out within 5 s")), 5000);
      });
      await a.logoutOtherClients();
      await bOut;
      const out = {
        aNew: a.loginToken() !== old && typeof a.loginToken() === "string",
        aUserId: a.userId(),
        aWho: (await a.call("whoami")).userId,
        bEvents,
        bUserId: b.userId(),
        bUser: b.user(),
        bWho: (await b.call("whoami")).userId,
      };
      // The new token resumes on a new connection; the old one does not.
      const c = ddp.DDP.connect(url, fast);
      out.oldToken = await c.loginWithToken(old).then(() => null, (e) => e.error);
      out.newToken = await c.loginWithToken(a.loginToken());
      for (const x of [a, b, c]) x.close();
      return out;
    }, app.ws, fast, username);
    assert.equal(r.aNew, true);
    assert.equal(r.aUserId, id);
    assert.equal(r.aWho, id);
    assert.deepEqual(r.bEvents, [["login_failed", 403], ["loggedOut"]]);
    assert.equal(r.bUserId, null);
    assert.equal(r.bUser, null);
    assert.equal(r.bWho, null);
    assert.equal(r.oldToken, 403);
    assert.equal(r.newToken, id);
  });

  test("a token revoked on the server logs the client out, with login_failed then loggedOut", async () => {
    const username = name("rv");
    const id = await createUser(username);
    await inPage(async ([url, fast, username]) => {
      const conn = ddp.DDP.connect(url, fast);
      window.revoked = { conn, events: [] };
      conn.on("login_failed", (e) => window.revoked.events.push(["login_failed", e.error]));
      conn.on("loggedOut", () => window.revoked.events.push(["loggedOut"]));
      await conn.loginWithPassword(username, "pw");
      window.revoked.out = new Promise((res, rej) => {
        conn.on("logout", res);
        setTimeout(() => rej(new Error("no logout event within 5 s")), 5000);
      });
    }, app.ws, fast, username);
    await control(`revoke?user=${id}`);
    const r = await inPage(async () => {
      const { conn, events, out } = window.revoked;
      await out;
      const result = { events, userId: conn.userId(), user: conn.user(), token: conn.loginToken(), who: (await conn.call("whoami")).userId };
      conn.close();
      return result;
    });
    assert.deepEqual(r, { events: [["login_failed", 403], ["loggedOut"]], userId: null, user: null, token: null, who: null });
  });

  test("the rate limit: a connection's 6th login in Meteor's 10 s window is refused with too-many-requests", async () => {
    const username = name("rl");
    await createUser(username);
    const r = await inPage(async ([url, fast, username]) => {
      const conn = ddp.DDP.connect(url, fast);
      const seen = [];
      // Meteor's window is fixed and shared (it may end during the run):
      // try until refused, at most twice the limit.
      for (let i = 1; i <= 12; i++) {
        const e = await conn.loginWithPassword(username, "wrong").then(() => null, (e) => e);
        seen.push(e?.error);
        if (e?.error === "too-many-requests") {
          const out = { at: i, seen, timeToReset: e.details?.timeToReset, userId: conn.userId() };
          conn.close();
          return out;
        }
      }
      conn.close();
      return { at: null, seen };
    }, app.ws, fast, username);
    assert.ok(r.at >= 6 && r.at <= 11, `refused at attempt ${r.at}: ${JSON.stringify(r.seen)}`);
    assert.ok(r.seen.slice(0, 5).every((e) => e === 403), JSON.stringify(r.seen));
    assert.equal(typeof r.timeToReset, "number");
    assert.equal(r.userId, null);
  });

  test("a call made while the login runs goes out after it and runs as the user", async () => {
    const username = name("q");
    const id = await createUser(username);
    const r = await inPage(async ([url, fast, username]) => {
      const conn = ddp.DDP.connect(url, fast);
      const login = conn.loginWithPassword(username, "pw");
      const who = conn.call("whoami");
      const out = { login: await login, who: (await who).userId, session: conn.id };
      conn.close();
      return out;
    }, app.ws, fast, username);
    assert.equal(r.login, id);
    assert.equal(r.who, id);
    const frames = (await control("stats")).frames.filter((f) => f.session === r.session).map((f) => f.method);
    assert.deepEqual(frames, ["login", "whoami"]);
  });

  test("a new session logs in again with the token before the calls queued meanwhile", async () => {
    const username = name("ns");
    const id = await createUser(username);
    const r = await inPage(async ([url, fast, username]) => {
      const conn = ddp.DDP.connect(url, fast);
      await conn.loginWithPassword(username, "pw");
      const first = conn.id;
      const logins = [];
      conn.on("login", (u) => logins.push([u, conn.user() !== null]));
      const ids = [];
      conn.onUserIdChange((u) => ids.push(u));
      // Meteor 3.0.4 does not resume sessions: every reconnect is a new one.
      conn.disconnect();
      const queued = conn.call("whoami");
      conn.reconnect();
      const who = (await queued).userId;
      await new Promise((res) => (logins.length ? res() : conn.once("login", res)));
      const out = { first, second: conn.id, resumed: conn.resumed, who, ids, logins, user: conn.user()?.username ?? null };
      conn.close();
      return out;
    }, app.ws, fast, username);
    assert.notEqual(r.first, r.second);
    assert.equal(r.resumed, false);
    assert.equal(r.who, id);
    assert.deepEqual(r.ids, [id], "the user id never went through null");
    assert.deepEqual(r.logins, [[id, true]]);
    assert.equal(r.user, username);
    const frames = (await control("stats")).frames.filter((f) => f.session === r.second).map((f) => [f.method, f.params?.[0]?.resume ? "resume" : null]);
    assert.deepEqual(frames, [["login", "resume"], ["whoami", null]]);
  });

  test("close(): Meteor 3.0.4 answers the disconnect message with Bad request, which the client never hears", async () => {
    const r = await inPage(async ([url, fast]) => {
      const conn = ddp.DDP.connect(url, fast);
      const errors = [];
      conn.on("error", (e) => errors.push(String(e?.message ?? e)));
      await conn.call("echo", 1);
      const session = conn.id;
      conn.close();
      await new Promise((res) => setTimeout(res, 300));
      return { session, errors };
    }, app.ws, fast);
    assert.deepEqual(r.errors, []);
    const wire = (await control("wire")).filter((f) => f.session === r.session);
    assert.ok(wire.some((f) => f.dir === "in" && f.frame.msg === "disconnect"), "close() says it is leaving");
    // The session is gone on the server (every connection of this file is closed by now).
    let connections;
    for (let i = 0; i < 50 && connections !== 0; i++) {
      connections = (await control("stats")).connections;
      if (connections !== 0) await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(connections, 0);
  });
}
