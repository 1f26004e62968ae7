// Accounts through the npm package's JavaScript API, in headless Chromium
// against the real test server (Meteor's accounts methods and the
// current-user document).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { usePage, openPage, pageReady, scenario, control, wsUrl, fast } from "./harness.mjs";

const inPage = usePage(before, after, assert);

async function createUser(sc, name) {
  const r = await control(sc, `accounts?op=create&username=${name}&email=${name}@example.com&password=pw`);
  return r.id;
}

const serverLog = (sc) => control(sc, "accounts?op=log");

test("loginWithPassword: userId and onUserIdChange follow, and the user document arrives", async () => {
  const sc = scenario("js-acc-login");
  const id = await createUser(sc, "ada");
  const r = await inPage(async ([url, fast]) => {
    const conn = ddp.DDP.connect(url, fast);
    const ids = [];
    const busy = [];
    const withDoc = [];
    const handle = conn.onUserIdChange((u) => { ids.push(u); withDoc.push(conn.user() !== null); });
    conn.onLoggingInChange((b) => busy.push(b));
    const events = [];
    conn.on("login", (u) => events.push(["login", u]));
    const before = conn.userId();
    const promise = conn.loginWithPassword("ada", "pw");
    const during = conn.loggingIn();
    const result = await promise;
    const out = { before, during, result, after: conn.userId(), user: conn.user(), ids: [...ids], withDoc: [...withDoc], busy: [...busy], events: [...events], token: typeof conn.loginToken() };
    out.byEmail = await conn.loginWithPassword({ email: "ada@example.com" }, "pw");
    out.whoami = await conn.call("whoami");
    handle.stop();
    conn.close();
    return out;
  }, wsUrl(sc), fast);
  assert.equal(r.before, null);
  assert.equal(r.during, true);
  assert.equal(r.result, id);
  assert.equal(r.after, id);
  assert.deepEqual(r.user, { _id: id, username: "ada", emails: [{ address: "ada@example.com", verified: false }] });
  assert.deepEqual(r.ids, [null, id], "called at once, then on the change");
  assert.deepEqual(r.withDoc, [false, true], "the user document is in when the user id is set");
  assert.deepEqual(r.busy, [false, true, false]);
  assert.deepEqual(r.events, [["login", id]]);
  assert.equal(r.token, "string");
  assert.equal(r.byEmail, id);
  assert.equal(r.whoami, id);
});

test("a wrong password rejects with a 403 Meteor.Error and userId stays null", async () => {
  const sc = scenario("js-acc-wrong");
  await createUser(sc, "ada");
  const r = await inPage(async ([url, fast]) => {
    const conn = ddp.DDP.connect(url, fast);
    const failed = [];
    conn.on("loginFailed", (e) => failed.push(e.reason));
    const grab = (p) => p.then(() => null, (e) => ({ error: e.error, reason: e.reason, errorType: e.errorType }));
    const wrong = await grab(conn.loginWithPassword("ada", "nope"));
    const missing = await grab(conn.loginWithPassword({ username: "bob" }, "pw"));
    let usage;
    try { conn.loginWithPassword({ name: "ada" }, "pw"); } catch (e) { usage = e.code; }
    const out = { wrong, missing, usage, userId: conn.userId(), loggingIn: conn.loggingIn(), user: conn.user(), failed };
    conn.close();
    return out;
  }, wsUrl(sc), fast);
  // Meteor 3.0.4's default: one ambiguous text for both.
  const ambiguous = "Something went wrong. Please check your credentials.";
  assert.deepEqual(r.wrong, { error: 403, reason: ambiguous, errorType: "Meteor.Error" });
  assert.deepEqual(r.missing, { error: 403, reason: ambiguous, errorType: "Meteor.Error" });
  assert.equal(r.usage, "invalid-argument");
  assert.equal(r.userId, null);
  assert.equal(r.loggingIn, false);
  assert.equal(r.user, null);
  assert.deepEqual(r.failed, [ambiguous, ambiguous]);
});

test("after a forced drop without resumption, a queued call runs logged in, after the login", async () => {
  const sc = scenario("js-acc-drop");
  const id = await createUser(sc, "ada");
  const r = await inPage(async ([url, fast, base, sc]) => {
    const conn = ddp.DDP.connect(url, fast);
    await conn.loginWithPassword("ada", "pw");
    const first = conn.id;
    await fetch(`${base}/control/${sc}/resume?on=false`, { method: "POST" });
    const down = new Promise((res) => conn.once("disconnect", res));
    await fetch(`${base}/control/${sc}/drop`, { method: "POST" });
    await down;
    const who = await conn.call("whoami");
    const out = { who, first, second: conn.id, resumed: conn.resumed, userId: conn.userId() };
    conn.close();
    return out;
  }, wsUrl(sc), fast, `http://127.0.0.1:${process.env.DDP_TEST_PORT ?? "3310"}`, sc);
  assert.equal(r.who, id);
  assert.notEqual(r.first, r.second);
  assert.equal(r.resumed, false);
  assert.equal(r.userId, id);
  const inSecond = (await serverLog(sc)).filter((e) => e.session === r.second).map((e) => [e.method, e.userId]);
  assert.deepEqual(inSecond, [["login", null], ["whoami", id]]);
});

test("persistLogin: a reloaded page logs in with the stored token, without a password", async () => {
  const sc = scenario("js-acc-reload");
  const id = await createUser(sc, "ada");
  const { browser, page, errors } = await openPage();
  try {
    const url = wsUrl(sc);
    const first = await page.evaluate(async ([url, fast]) => {
      const conn = ddp.DDP.connect(url, fast);
      const resumed = conn.persistLogin();
      const userId = await conn.loginWithPassword("ada", "pw");
      return { resumed, userId, stored: localStorage.getItem(`Meteor.loginToken:${url}`), storedId: localStorage.getItem(`Meteor.userId:${url}`) };
    }, [url, fast]);
    assert.equal(first.resumed, false);
    assert.equal(first.userId, id);
    assert.equal(first.storedId, id);
    assert.equal(typeof first.stored, "string");
    const logins = (await serverLog(sc)).filter((e) => e.method === "login").length;
    await page.reload();
    await pageReady(page);
    const second = await page.evaluate(async ([url, fast]) => {
      const conn = ddp.DDP.connect(url, fast);
      const resumed = conn.persistLogin();
      const atOnce = conn.userId();
      const logged = await new Promise((res) => conn.on("login", res));
      const out = { resumed, atOnce, logged, whoami: await conn.call("whoami"), token: conn.loginToken() };
      conn.close();
      return out;
    }, [url, fast]);
    assert.deepEqual(second, { resumed: true, atOnce: id, logged: id, whoami: id, token: first.stored });
    const after = (await serverLog(sc)).filter((e) => e.method === "login").length;
    assert.equal(after, logins + 1, "one resume login");
    // An expired stored token is removed and never sent.
    const third = await page.evaluate(async ([url, fast]) => {
      localStorage.setItem(`Meteor.loginTokenExpires:${url}`, new Date(Date.now() - 1000).toString());
      const conn = ddp.DDP.connect(url, fast);
      const resumed = conn.persistLogin();
      await conn.call("echo", 1);
      const out = { resumed, userId: conn.userId(), stored: localStorage.getItem(`Meteor.loginToken:${url}`) };
      conn.close();
      return out;
    }, [url, fast]);
    assert.deepEqual(third, { resumed: false, userId: null, stored: null });
    assert.equal((await serverLog(sc)).filter((e) => e.method === "login").length, after);
  } finally {
    await browser.close();
  }
  assert.deepEqual(errors.map(String), []);
});

test("a token revoked on the server logs out, with the loggedOut and login_failed events", async () => {
  const sc = scenario("js-acc-revoke");
  const id = await createUser(sc, "ada");
  const r = await inPage(async ([url, fast, base, sc]) => {
    const conn = ddp.DDP.connect(url, fast);
    const events = [];
    conn.on("login_failed", (e) => events.push(["login_failed", e.error, e.reason]));
    conn.on("loggedOut", () => events.push(["loggedOut"]));
    await conn.loginWithPassword("ada", "pw");
    const out = new Promise((res, rej) => {
      conn.on("logout", res);
      setTimeout(() => rej(new Error("no logout event within 5 s")), 5000);
    });
    await fetch(`${base}/control/${sc}/accounts?op=revoke&user=ada`, { method: "POST" });
    await out;
    const result = { events, userId: conn.userId(), user: conn.user(), token: conn.loginToken(), whoami: await conn.call("whoami") };
    conn.close();
    return result;
  }, wsUrl(sc), fast, `http://127.0.0.1:${process.env.DDP_TEST_PORT ?? "3310"}`, sc);
  assert.deepEqual(r.events, [["login_failed", 403, "You've been logged out by the server. Please log in again."], ["loggedOut"]]);
  assert.equal(r.userId, null);
  assert.equal(r.user, null);
  assert.equal(r.token, null);
  assert.equal(r.whoami, null);
  assert.ok(id);
});

test("logout(): userId null and the user document removed", async () => {
  const sc = scenario("js-acc-logout");
  const id = await createUser(sc, "ada");
  const r = await inPage(async ([url, fast]) => {
    const conn = ddp.DDP.connect(url, fast);
    const ids = [];
    conn.onUserIdChange((u) => ids.push(u));
    await conn.loginWithPassword("ada", "pw");
    const users = conn.collection("users");
    const had = users.findOne(conn.userId()) !== undefined;
    await conn.logout();
    const out = { had, ids, userId: conn.userId(), user: conn.user(), docs: users.find().length, whoami: await conn.call("whoami") };
    conn.close();
    return out;
  }, wsUrl(sc), fast);
  assert.deepEqual(r, { had: true, ids: [null, id, null], userId: null, user: null, docs: 0, whoami: null });
});

test("createUser logs in as the new user", async () => {
  const sc = scenario("js-acc-create");
  const r = await inPage(async ([url, fast]) => {
    const conn = ddp.DDP.connect(url, fast);
    const id = await conn.createUser({ username: "cy", email: "cy@example.com", password: "pw", profile: { name: "Cy" } });
    const dup = await conn.createUser({ username: "cy", password: "pw" }).catch((e) => e.reason);
    const out = { same: id === conn.userId(), profile: conn.user().profile, dup };
    conn.close();
    return out;
  }, wsUrl(sc), fast);
  assert.deepEqual(r, { same: true, profile: { name: "Cy" }, dup: "Something went wrong. Please check your credentials." });
});

test("a login in flight when its connection is freed rejects with closed, never hangs", async () => {
  const sc = scenario("js-acc-freed");
  await createUser(sc, "ada");
  const r = await inPage(async ([url, fast, base, sc]) => {
    const conn = ddp.DDP.connect(url, fast);
    await new Promise((ok) => conn.once("connect", ok));
    // The server reads nothing from now on: the login is never answered.
    await fetch(`${base}/control/${sc}/silent?on=true`, { method: "POST" });
    const login = conn.loginWithPassword("ada", "pw").then(() => "resolved", (e) => [e.name, e.error ?? e.code]);
    await new Promise((ok) => setTimeout(ok, 50));
    conn.free();
    const timeout = new Promise((ok) => setTimeout(() => ok("still pending after 5 s"), 5000));
    return await Promise.race([login, timeout]);
  }, wsUrl(sc), fast, `http://127.0.0.1:${process.env.DDP_TEST_PORT ?? "3310"}`, sc);
  assert.equal(r[1], "closed", JSON.stringify(r));
  await control(sc, "silent?on=false");
});
