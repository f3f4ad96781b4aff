// Drives the web buddy list (examples/web, served by imppd --web-root) in headless Chromium
// with playwright-core; started by tests/web.rs, which runs imppd (and baresip) around it.
//
//   node buddy_list.mjs pages      two pages, alice and bob: presence, status, chat,
//                                  is-composing both ways, messages stored while bob is away
//   node buddy_list.mjs softphone  alice's page with carol on a baresip softphone
//
// Environment: IMPP_WEB_URL (the page, http://127.0.0.1:PORT/), IMPP_SCREENSHOTS (a
// directory), CHROMIUM (the browser executable). Each step waits for what the page shows,
// for a bounded time; the first one that does not happen fails the run (exit 1) with the
// step's name. Progress goes to stdout as `STEP name` lines (tests/web.rs waits on some).

import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const URL_BASE = process.env.IMPP_WEB_URL;
const SHOTS = process.env.IMPP_SCREENSHOTS;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const DOMAIN = "example.test";
const WAIT = 15_000;
const scenario = process.argv[2];

if (!URL_BASE || !SHOTS || !["pages", "softphone"].includes(scenario)) {
  console.error("usage: IMPP_WEB_URL=... IMPP_SCREENSHOTS=... node buddy_list.mjs pages|softphone");
  process.exit(2);
}
mkdirSync(SHOTS, { recursive: true });
// A failure's screenshots are of that run only.
for (const old of readdirSync(SHOTS).filter((f) => f.startsWith(`failed-${scenario}-`))) {
  rmSync(join(SHOTS, old));
}

// Chromium here refuses background network connections unless told not to make them; no
// sandbox (the tests may run as root); QUIC off (loopback HTTP/1.1 only).
const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const aor = (user) => `sip:${user}@${DOMAIN}`;
let current = "start";

function step(name) {
  current = name;
  console.log(`STEP ${name}`);
}

async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** A new page (its own context: its own storage, like another person's browser). */
async function openPage(browser, context) {
  const ctx = context || (await browser.newContext());
  const page = await ctx.newPage();
  page.on("pageerror", (e) => console.log(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") console.log(`console ${m.type()}: ${m.text()}`);
  });
  return page;
}

async function signIn(page, user, password = `${user}-pw`) {
  await page.goto(`${URL_BASE}?user=${user}&domain=${DOMAIN}`);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator('#connection[data-state="registered"]').waitFor({ timeout: WAIT });
  // The first PUBLISH (available) is answered.
  await page.locator("#status-result[data-published]").waitFor({ timeout: WAIT });
}

async function addBuddy(page, user) {
  await page.getByLabel("Add a buddy").fill(user);
  await page.getByRole("button", { name: "Add", exact: true }).click();
  await buddy(page, user).waitFor({ timeout: WAIT });
}

const buddy = (page, user) => page.locator(`#buddy-list li[data-buddy="${aor(user)}"]`);

/** Waits until `user` shows on `page` with these fields (status, activity, note). */
async function sees(page, user, want) {
  const item = buddy(page, user);
  try {
    await page.waitForFunction(
      ([selector, want]) => {
        const li = document.querySelector(selector);
        if (!li) return false;
        const field = (f) => li.querySelector(`[data-field="${f}"]`).textContent;
        return (
          li.dataset.status === want.status &&
          (want.activity === undefined || field("activity") === want.activity) &&
          (want.note === undefined || field("note") === want.note)
        );
      },
      [`#buddy-list li[data-buddy="${aor(user)}"]`, want],
      { timeout: WAIT },
    );
  } catch (e) {
    const shown = await item.evaluate((li) => `${li.dataset.status} / ${li.textContent.replace(/\s+/g, " ")}`).catch(() => "no such buddy");
    throw new Error(`${user} never showed ${JSON.stringify(want)} (shown: ${shown})`);
  }
}

async function setStatus(page, basic, activity, note) {
  await page.getByLabel("Availability").selectOption(basic);
  await page.getByLabel("Activity").selectOption(activity);
  await page.getByLabel("Note").fill(note);
  await page.getByRole("button", { name: "Set status" }).click();
  await page.locator(`#status-result[data-published="${basic}|${activity}|${note}"]`).waitFor({ timeout: WAIT });
}

async function openChat(page, user) {
  await page.getByRole("button", { name: `Chat with ${user}` }).click();
  await page.locator(`#chat[data-peer="${aor(user)}"]`).waitFor({ timeout: WAIT });
}

/** Waits for a message with `text` in the open chat (`direction` in|out, more attributes). */
async function message(page, direction, text, extra = "") {
  const item = page.locator(`#chat-log li[data-direction="${direction}"]${extra}`, { hasText: text });
  try {
    await item.first().waitFor({ timeout: WAIT });
  } catch {
    const log = await page.locator("#chat-log").textContent().catch(() => "");
    throw new Error(`no ${direction} message ${JSON.stringify(text)} ${extra} in the chat (it shows: ${log})`);
  }
}

/** The message `text` is shown once in the open chat, not more. */
async function once(page, text) {
  const n = await page.locator("#chat-log li", { hasText: text }).count();
  if (n !== 1) throw new Error(`${JSON.stringify(text)} shown ${n} times`);
}

async function send(page, text) {
  await page.getByLabel("Message", { exact: true }).fill(text);
  await page.getByRole("button", { name: "Send" }).click();
}

async function pages(browser) {
  step("sign-in");
  const alice = await openPage(browser);
  await signIn(alice, "alice");
  const bobContext = await browser.newContext();
  let bob = await openPage(browser, bobContext);
  await signIn(bob, "bob");

  step("a wrong password is refused");
  const mallory = await openPage(browser);
  await mallory.goto(`${URL_BASE}?user=carol`);
  await mallory.getByLabel("Password").fill("not-carols");
  await mallory.getByRole("button", { name: "Sign in" }).click();
  await mallory.locator("#sign-in-error:not([hidden])").waitFor({ timeout: WAIT });
  await mallory.close();

  step("see each other online");
  await addBuddy(alice, "bob");
  await addBuddy(bob, "alice");
  await sees(alice, "bob", { status: "open", activity: "", note: "" });
  await sees(bob, "alice", { status: "open", activity: "", note: "" });
  await shot(alice, "1-alice-online");

  step("status changes");
  await setStatus(alice, "open", "away", "out for lunch");
  await sees(bob, "alice", { status: "open", activity: "away", note: "out for lunch" });
  await setStatus(bob, "open", "busy", "writing tests");
  await sees(alice, "bob", { status: "open", activity: "busy", note: "writing tests" });
  await setStatus(bob, "closed", "", "");
  await sees(alice, "bob", { status: "closed", activity: "", note: "" });
  await setStatus(bob, "open", "", "back");
  await sees(alice, "bob", { status: "open", activity: "", note: "back" });
  await shot(bob, "2-bob-sees-alice-away");

  step("bob signs out: alice sees him offline; back again");
  await bob.getByRole("button", { name: "Sign out" }).click();
  await bob.locator('#connection[data-state="signed-out"]').waitFor({ timeout: WAIT });
  await sees(alice, "bob", { status: "closed", activity: "", note: "" });
  await signIn(bob, "bob");
  await sees(alice, "bob", { status: "open", activity: "", note: "" });
  await sees(bob, "alice", { status: "open", activity: "away", note: "out for lunch" });

  step("alice types: bob sees it");
  await openChat(alice, "bob");
  await alice.getByLabel("Message", { exact: true }).pressSequentially("Hello B", { delay: 20 });
  await buddy(bob, "alice").locator('[data-field="typing"]:not([hidden])').waitFor({ timeout: WAIT });
  await shot(bob, "3-bob-sees-alice-typing");

  step("alice sends: bob gets it, typing ends");
  await alice.getByLabel("Message", { exact: true }).pressSequentially("ob!", { delay: 20 });
  await alice.getByRole("button", { name: "Send" }).click();
  await message(alice, "out", "Hello Bob!", '[data-state="delivered"]');
  await message(bob, "in", "Hello Bob!", '[data-stored="false"]');
  await once(bob, "Hello Bob!");
  await buddy(bob, "alice").locator('[data-field="typing"]').waitFor({ state: "hidden", timeout: WAIT });

  step("bob types back: alice sees it in the chat");
  await bob.locator('#chat[data-peer="sip:alice@example.test"]').waitFor({ timeout: WAIT });
  await bob.getByLabel("Message", { exact: true }).pressSequentially("Hi al", { delay: 20 });
  await alice.locator("#typing:not([hidden])", { hasText: "bob is typing" }).waitFor({ timeout: WAIT });
  await shot(alice, "4-alice-sees-bob-typing");
  step("bob clears his input: alice sees him stop");
  await bob.getByLabel("Message", { exact: true }).fill("");
  await bob.getByLabel("Message", { exact: true }).dispatchEvent("input");
  await alice.locator("#typing").waitFor({ state: "hidden", timeout: WAIT });
  await send(bob, "Hi alice, how are you?");
  await message(alice, "in", "Hi alice, how are you?");
  await message(bob, "out", "Hi alice, how are you?", '[data-state="delivered"]');
  await shot(alice, "5-alice-chat");

  step("bob closes his page; alice's messages are stored");
  // No goodbye: the WebSocket just closes, and imppd makes bob's contact unreachable.
  await bob.close();
  const away = ["Are you there?", "Call me when you are back."];
  for (const text of away) {
    await send(alice, text);
    await message(alice, "out", text, '[data-state="stored"]');
  }
  await shot(alice, "6-alice-sends-while-bob-is-away");

  step("bob signs in again and sees them");
  // The page tells stored messages by their Date header, which has whole seconds: bob
  // comes back in a later second than alice's last message.
  await alice.waitForTimeout(1100);
  bob = await openPage(browser, bobContext);
  await signIn(bob, "bob");
  for (const text of away) {
    await message(bob, "in", text, '[data-stored="true"]');
    await once(bob, text);
  }
  // The buddy list was kept in the page's storage.
  await sees(bob, "alice", { status: "open", activity: "away", note: "out for lunch" });
  await shot(bob, "7-bob-back-with-stored-messages");
  step("done");
}

async function softphone(browser) {
  step("sign-in");
  const alice = await openPage(browser);
  await signIn(alice, "alice");
  await setStatus(alice, "open", "", "on the web");
  await addBuddy(alice, "carol");
  step("alice sees carol online");
  await sees(alice, "carol", { status: "open" });
  await openChat(alice, "carol");
  console.log("STEP sees-carol");
  step("message from carol");
  await message(alice, "in", "hello from baresip");
  step("reply to carol");
  await send(alice, "hello from the web page");
  await message(alice, "out", "hello from the web page", '[data-state="delivered"]');
  await shot(alice, "8-alice-and-baresip-carol");
  step("done");
}

const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
try {
  await (scenario === "pages" ? pages(browser) : softphone(browser));
} catch (e) {
  console.log(`FAILED at step "${current}": ${e.message}`);
  for (const [i, context] of browser.contexts().entries()) {
    for (const [j, page] of context.pages().entries()) {
      await page.screenshot({ path: join(SHOTS, `failed-${scenario}-${i}-${j}.png`), fullPage: true }).catch(() => {});
    }
  }
  process.exitCode = 1;
} finally {
  await browser.close();
}
