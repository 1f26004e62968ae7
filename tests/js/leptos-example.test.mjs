// The Leptos example app (examples/leptos-todos, built by
// scripts/build-example.sh, served at /leptos/) in headless Chromium: the
// badge through a server drop, a todo added offline, toggles, removals,
// todos kept across real page reloads (queued, and sent but unanswered),
// the last known todos shown at once after a reload with the server away
// (stale, then reconciled in place), and the chat room, read off the page.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { useBrowser, base, control, scenario } from "./harness.mjs";

const shared = useBrowser(before, after, assert);
const errors = shared.errors;

/** Opens the app on its own scenario; resolves once the badge says connected. */
async function openApp(sc) {
  const page = await shared.browser.newPage();
  page.on("pageerror", (e) => errors.push(e));
  // Chromium logs a refused WebSocket handshake itself (the tests that keep
  // the server away cause them); anything else logged as an error is the app's.
  page.on("console", (m) => {
    if (m.type() === "error" && !/^WebSocket connection to .* failed/.test(m.text())) errors.push(m.text());
  });
  await page.goto(`${base}/leptos/?scenario=${sc}`);
  await page.waitForFunction(() => document.querySelector("#badge")?.textContent === "connected", null, { timeout: 20000 });
  return page;
}

const todoTexts = (page) => page.$$eval("#todos li .text", (els) => els.map((e) => e.textContent));

test("after a server drop the badge goes waiting, then connected", async () => {
  const sc = scenario("leptos-badge");
  const page = await openApp(sc);
  // Every text the badge shows, in order.
  await page.evaluate(() => {
    const badge = document.querySelector("#badge");
    window.badgeLog = [badge.textContent];
    new MutationObserver(() => {
      const t = badge.textContent;
      if (window.badgeLog.at(-1) !== t) window.badgeLog.push(t);
    }).observe(badge, { subtree: true, childList: true, characterData: true });
  });
  await control(sc, "drop");
  await page.waitForFunction(() => window.badgeLog.length > 1 && window.badgeLog.at(-1) === "connected", null, { timeout: 15000 });
  const log = await page.evaluate(() => window.badgeLog);
  assert.equal(log[0], "connected");
  const waiting = log.indexOf("waiting");
  assert.ok(waiting > 0, `the badge showed waiting: ${log.join(" → ")}`);
  assert.equal(log.at(-1), "connected");
  assert.equal(await page.textContent("#badge"), "connected");
  assert.equal((await page.getAttribute("#badge", "class")).trim(), "badge connected");
  await page.close();
});

test("a todo added offline shows at once and is there once after reconnecting", async () => {
  const sc = scenario("leptos-offline");
  const page = await openApp(sc);
  await page.waitForFunction(() => document.querySelector("#todos-ready")?.textContent.includes("live"));
  await page.click("#disconnect");
  await page.waitForFunction(() => document.querySelector("#badge").textContent === "offline");
  await page.fill("#new-todo", "buy milk");
  await page.click("#add-todo");
  // At once, from the client stub, while offline.
  await page.waitForFunction(() => [...document.querySelectorAll("#todos li .text")].some((e) => e.textContent === "buy milk"), null, { timeout: 2000 });
  assert.equal(await page.textContent("#outbox"), "1 queued, 0 in flight");
  assert.equal(await page.inputValue("#new-todo"), "");
  await page.click("#reconnect");
  await page.waitForFunction(() => document.querySelector("#badge").textContent === "connected", null, { timeout: 10000 });
  await page.waitForFunction(() => document.querySelector("#outbox").textContent === "0 queued, 0 in flight", null, { timeout: 10000 });
  await page.waitForTimeout(200);
  assert.deepEqual(await todoTexts(page), ["buy milk"], "once, after the server's copy replaced the stub's");
  // The server has it: a fresh page of the same scenario shows it, once.
  const other = await openApp(sc);
  await other.waitForFunction(() => document.querySelectorAll("#todos li").length > 0, null, { timeout: 5000 });
  assert.deepEqual(await todoTexts(other), ["buy milk"]);
  assert.equal((await control(sc, "executions")).runs.insertDoc, 1, "the insert ran once on the server");

  // Toggle and remove go through stubs too, and reach the other page.
  await page.click("#todos li .toggle");
  await page.waitForFunction(() => document.querySelector("#todos li").classList.contains("done"), null, { timeout: 2000 });
  await other.waitForFunction(() => document.querySelector("#todos li")?.classList.contains("done"), null, { timeout: 5000 });
  await page.click("#todos li .remove");
  await page.waitForFunction(() => document.querySelectorAll("#todos li").length === 0, null, { timeout: 2000 });
  await other.waitForFunction(() => document.querySelectorAll("#todos li").length === 0, null, { timeout: 5000 });
  await other.close();
  await page.close();
});

test("a todo added while the server is away survives a reload and lands once, with its stub's id", async () => {
  const sc = scenario("leptos-reload");
  const page = await openApp(sc);
  await page.waitForFunction(() => document.querySelector("#todos-ready")?.textContent.includes("live"));
  await control(sc, "refuse?on=true");
  await control(sc, "drop");
  await page.waitForFunction(() => document.querySelector("#badge").textContent !== "connected");
  await page.fill("#new-todo", "pay rent");
  await page.click("#add-todo");
  await page.waitForFunction(() => document.querySelectorAll("#todos li").length === 1, null, { timeout: 2000 });
  const stubId = await page.getAttribute("#todos li", "data-id");
  // IndexedDB has it before the page goes.
  await page.waitForFunction(() => document.querySelector("#pending").textContent === "1 kept, 1 saved", null, { timeout: 5000 });
  await page.reload();
  // The next page, with the server still away: the earlier page's call is listed, kept.
  await page.waitForFunction(() => document.querySelector("#pending")?.textContent === "1 kept, 1 saved", null, { timeout: 10000 });
  await control(sc, "refuse?on=false");
  await page.waitForFunction(
    () => document.querySelectorAll("#todos li").length === 1 && document.querySelector("#pending").textContent === "0 kept, 0 saved",
    null,
    { timeout: 15000 },
  );
  assert.equal(await page.getAttribute("#todos li", "data-id"), stubId, "the server's id is the stub's");
  assert.deepEqual(await todoTexts(page), ["pay rent"]);
  assert.equal((await control(sc, "executions")).runs.insertDoc, 1, "the insert ran once");
  await page.close();
});

test("a todo sent but unanswered when the page reloads is sent again by the next page and lands once", async () => {
  const sc = scenario("leptos-inflight");
  const page = await openApp(sc);
  await page.waitForFunction(() => document.querySelector("#todos-ready")?.textContent.includes("live"));
  // The room's join (a `wait` call) answered first: nothing else is in flight.
  await page.waitForFunction(() => document.querySelector("#room-state")?.textContent === " joined");
  // The server reads nothing from now on: the insert goes out and is never answered.
  await control(sc, "silent?on=true");
  await page.fill("#new-todo", "call mum");
  await page.click("#add-todo");
  await page
    .waitForFunction(
      () => document.querySelector("#outbox").textContent === "0 queued, 1 in flight" && document.querySelector("#pending").textContent === "1 kept, 1 saved",
      null,
      { timeout: 5000 },
    )
    .catch(async (e) => {
      throw new Error(`${e.message}: outbox "${await page.textContent("#outbox")}", pending "${await page.textContent("#pending")}", badge "${await page.textContent("#badge")}"`);
    });
  const stubId = await page.getAttribute("#todos li", "data-id");
  await page.reload();
  await control(sc, "silent?on=false");
  await page.waitForFunction(
    () => document.querySelectorAll("#todos li").length === 1 && document.querySelector("#pending")?.textContent === "0 kept, 0 saved",
    null,
    { timeout: 15000 },
  );
  assert.equal(await page.getAttribute("#todos li", "data-id"), stubId, "the server's id is the stub's");
  assert.deepEqual(await todoTexts(page), ["call mum"]);
  assert.equal((await control(sc, "executions")).runs.insertDoc, 1, "the insert ran once: the unread one never ran");
  await page.close();
});

test("a reload with the server away shows the last known todos at once, marked stale, then only what changed", async () => {
  const sc = scenario("leptos-cache");
  const page = await openApp(sc);
  await page.waitForFunction(() => document.querySelector("#todos-ready")?.textContent.includes("live"));
  for (const t of ["bread", "cheese", "wine"]) {
    await page.fill("#new-todo", t);
    await page.click("#add-todo");
  }
  await page.waitForFunction(
    () => document.querySelectorAll("#todos li").length === 3 && document.querySelector("#outbox").textContent === "0 queued, 0 in flight",
    null,
    { timeout: 10000 },
  );
  // The cache writes its batch 200 ms after the last change.
  await page.waitForTimeout(800);
  await page.goto("about:blank");
  // Meanwhile another client (its own browser context: its own IndexedDB)
  // checks one todo off and removes another.
  const other = await openApp(sc);
  await other.waitForFunction(() => document.querySelectorAll("#todos li").length === 3, null, { timeout: 10000 });
  const row = (t) => `#todos li:has(.text:text-is("${t}"))`;
  await other.click(`${row("cheese")} .toggle`);
  await other.click(`${row("wine")} .remove`);
  await other.waitForFunction(
    () => document.querySelectorAll("#todos li").length === 2 && document.querySelector("#outbox").textContent === "0 queued, 0 in flight",
    null,
    { timeout: 10000 },
  );
  await other.close();

  // The reload, with the server away: the todos show at once, stale.
  await control(sc, "refuse?on=true");
  const start = Date.now();
  await page.goto(`${base}/leptos/?scenario=${sc}`);
  await page.waitForFunction(() => document.querySelectorAll("#todos li").length === 3, null, { timeout: 5000 });
  const shownAfter = Date.now() - start;
  assert.deepEqual(await todoTexts(page), ["bread", "cheese", "wine"], `the last known todos (${shownAfter} ms after the navigation)`);
  assert.notEqual(await page.textContent("#badge"), "connected");
  assert.equal(await page.textContent("#todos-ready"), " (last known, not live yet)");
  assert.ok((await page.getAttribute("#todos", "class")).includes("stale"));
  assert.equal(await page.$$eval("#todos li.done", (els) => els.length), 0);
  // Every row is marked, to tell later whether it was made again.
  await page.$$eval("#todos li", (els) => els.forEach((e) => (e.__cached = true)));
  await page.waitForTimeout(500);
  assert.equal(await page.textContent("#todos-ready"), " (last known, not live yet)", "stale while offline");

  // The server is back: only the differences apply, once ready.
  await control(sc, "refuse?on=false");
  await page.waitForFunction(() => document.querySelector("#todos-ready").textContent === " (live)", null, { timeout: 15000 });
  assert.deepEqual(await todoTexts(page), ["bread", "cheese"]);
  assert.ok(!(await page.getAttribute("#todos", "class")).includes("stale"));
  const rows = await page.$$eval("#todos li", (els) => els.map((e) => [e.querySelector(".text").textContent, e.__cached === true, e.classList.contains("done")]));
  assert.deepEqual(rows, [["bread", true, false], ["cheese", true, true]], "the same rows: nothing removed and added again; cheese changed in place");
  await page.close();
});

test("the chat room: joined, and a message comes back to everybody", async () => {
  const sc = scenario("leptos-chat");
  const page = await openApp(sc);
  await page.waitForFunction(() => document.querySelector("#room-state").textContent.includes("joined") && !document.querySelector("#room-state").textContent.includes("not"), null, { timeout: 10000 });
  await page.fill("#chat-text", "hello room");
  await page.click("#chat-send");
  await page.waitForFunction(() => document.querySelector("#chat li")?.textContent === "leptos: hello room", null, { timeout: 5000 });
  await page.close();
});
