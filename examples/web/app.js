// The web buddy list: SIP over WebSocket (RFC 7118) with SIP.js, against imppd.
//
// Sign in = REGISTER with digest credentials (SIP.js answers the challenges); then the page
// PUBLISHes its own presence, SUBSCRIBEs to each buddy's presence, sends and takes MESSAGE
// requests (text and RFC 3994 is-composing indications). Messages that imppd stored while
// this user was away arrive right after the REGISTER; the page tells them by their Date
// header (set by the sender) being older than the sign-in.

import {
  Messager,
  Publisher,
  Registerer,
  RegistererState,
  Subscriber,
  SubscriptionState,
  UserAgent,
} from "./node_modules/sip.js/lib/index.js";
import { ISCOMPOSING_TYPE, PIDF_TYPE, isComposing, pidf, readIsComposing, readPidf } from "./documents.js";

/** RFC 3994 §4: an idle timeout of 15 s, and a refresh of active indications. */
const COMPOSING_IDLE_MS = 15_000;
const COMPOSING_REFRESH_S = 60;
/** Registration and subscription lifetimes asked for (SIP.js refreshes them). */
const EXPIRES_S = 600;
/** The publication's: short, because a page that goes away without a goodbye (closed,
 * crashed) leaves its publication behind until it expires. */
const PUBLISH_EXPIRES_S = 120;

const $ = (id) => document.getElementById(id);

/** The signed-in session; null while signed out. */
let session = null;

// ---- signing in and out ----------------------------------------------------------------

function defaultServer() {
  if (!location.host) return "";
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/`;
}

function setConnection(state, text) {
  $("connection").dataset.state = state;
  $("connection").textContent = text;
}

function showSignInError(text) {
  $("sign-in-error").textContent = text;
  $("sign-in-error").hidden = !text;
}

/** `bob` or `sip:bob@example.test` → `sip:bob@<domain>`; null when it is not an address. */
function addressOf(text, domain) {
  const value = text.trim();
  const uri = value.startsWith("sip:") ? value : `sip:${value}${value.includes("@") ? "" : `@${domain}`}`;
  return UserAgent.makeURI(uri) ? uri : null;
}

async function signIn(user, password, domain, server) {
  const aor = addressOf(user, domain);
  if (!aor) throw new Error(`'${user}' is not a user name`);
  const signedInAt = Date.now();
  const ua = new UserAgent({
    uri: UserAgent.makeURI(aor),
    authorizationUsername: user.trim(),
    authorizationPassword: password,
    // Double-CRLF keep-alives (RFC 5626 §4.4.1, answered by imppd) every ~30 s: an idle
    // page keeps its WebSocket, which imppd closes after 180 s without traffic.
    transportOptions: { server, keepAliveInterval: 30 },
    logLevel: "warn",
    userAgentString: "libimpp-web-buddy-list (SIP.js)",
    delegate: {
      onMessage: (message) => receiveMessage(message),
      onDisconnect: (error) => {
        if (session && session.ua === ua) {
          setConnection("disconnected", `Disconnected${error ? `: ${error.message}` : ""}`);
        }
      },
    },
  });
  session = { ua, aor, domain, signedInAt, buddies: new Map(), chats: new Map(), selected: null, publisher: null, composing: new Map() };
  setConnection("connecting", "Connecting…");
  await ua.start();
  const registerer = new Registerer(ua, { expires: EXPIRES_S });
  session.registerer = registerer;
  await new Promise((resolve, reject) => {
    registerer.stateChange.addListener((state) => {
      if (state === RegistererState.Registered) resolve();
    });
    registerer
      .register({
        requestDelegate: {
          onReject: (response) => {
            const m = response.message;
            reject(new Error(`sign-in refused: ${m.statusCode} ${m.reasonPhrase}`));
          },
        },
      })
      .catch(reject);
  });
  setConnection("registered", `Signed in as ${aor}`);
}

async function signOut() {
  const s = session;
  if (!s) return;
  session = null;
  for (const buddy of s.buddies.values()) await buddy.subscriber.unsubscribe().catch(() => {});
  if (s.publisher) await s.publisher.unpublish().catch(() => {});
  await s.registerer.unregister().catch(() => {});
  await s.ua.stop().catch(() => {});
  $("app").hidden = true;
  $("sign-in").hidden = false;
  setConnection("signed-out", "Signed out");
}

// ---- own status ------------------------------------------------------------------------

async function publishStatus() {
  const s = session;
  const basic = $("status-basic").value;
  const activity = $("status-activity").value;
  const note = $("status-note").value.trim();
  if (!s.publisher) {
    s.publisher = new Publisher(s.ua, s.ua.configuration.uri, "presence", {
      expires: PUBLISH_EXPIRES_S,
      contentType: PIDF_TYPE,
    });
  }
  $("status-result").textContent = "Publishing…";
  await s.publisher.publish(pidf(s.aor, basic, activity, note));
  $("status-result").textContent = `Published: ${basic}${activity ? `, ${activity}` : ""}${note ? `, "${note}"` : ""}`;
  $("status-result").dataset.published = `${basic}|${activity}|${note}`;
}

// ---- buddies and their presence --------------------------------------------------------

function storedBuddies() {
  try {
    return JSON.parse(localStorage.getItem(`impp.buddies.${session.aor}`) || "[]");
  } catch {
    return [];
  }
}

function saveBuddies() {
  localStorage.setItem(`impp.buddies.${session.aor}`, JSON.stringify([...session.buddies.keys()]));
}

function buddyName(uri) {
  return uri.replace(/^sip:/, "").replace(`@${session.domain}`, "");
}

function addBuddy(uri) {
  const s = session;
  if (s.buddies.has(uri) || uri === s.aor) return;
  const item = document.createElement("li");
  item.dataset.buddy = uri;
  item.dataset.status = "unknown";
  item.innerHTML = `<button type="button" class="open-chat"></button>
    <span class="presence" data-field="status">unknown</span><span class="activity" data-field="activity"></span><span class="note" data-field="note"></span>
    <span class="buddy-typing" data-field="typing" hidden>typing…</span><span class="unread" data-field="unread" hidden></span>
    <button type="button" class="remove" aria-label="Remove ${buddyName(uri)}">Remove</button>`;
  const open = item.querySelector(".open-chat");
  open.textContent = buddyName(uri);
  open.setAttribute("aria-label", `Chat with ${buddyName(uri)}`);
  open.addEventListener("click", () => selectChat(uri));
  item.querySelector(".remove").addEventListener("click", () => removeBuddy(uri));
  $("buddy-list").append(item);

  const subscriber = new Subscriber(s.ua, UserAgent.makeURI(uri), "presence", {
    expires: EXPIRES_S,
    extraHeaders: [`Accept: ${PIDF_TYPE}`],
  });
  subscriber.delegate = {
    onNotify: (notification) => {
      notification.accept();
      const body = notification.request.body;
      const state = notification.request.getHeader("Subscription-State") || "";
      if (state.startsWith("pending")) return showPresence(item, { status: "pending", activity: "", note: "" });
      const presence = body ? readPidf(body) : null;
      if (presence) showPresence(item, presence);
    },
  };
  subscriber.stateChange.addListener((state) => {
    if (state === SubscriptionState.Terminated) showPresence(item, { status: "unknown", activity: "", note: "" });
  });
  s.buddies.set(uri, { item, subscriber });
  saveBuddies();
  subscriber.subscribe().catch(() => showPresence(item, { status: "unknown", activity: "", note: "" }));
}

function removeBuddy(uri) {
  const buddy = session.buddies.get(uri);
  if (!buddy) return;
  buddy.subscriber.unsubscribe().catch(() => {});
  buddy.item.remove();
  session.buddies.delete(uri);
  saveBuddies();
}

function showPresence(item, { status, activity, note }) {
  item.dataset.status = status;
  const words = { open: "online", closed: "offline", pending: "waiting for approval", unknown: "unknown" };
  item.querySelector('[data-field="status"]').textContent = words[status] || status;
  item.querySelector('[data-field="activity"]').textContent = activity;
  item.querySelector('[data-field="note"]').textContent = note;
}

// ---- chat ------------------------------------------------------------------------------

function chatOf(uri) {
  if (!session.chats.has(uri)) session.chats.set(uri, []);
  return session.chats.get(uri);
}

function selectChat(uri) {
  const s = session;
  s.selected = uri;
  for (const [other, buddy] of s.buddies) buddy.item.dataset.selected = String(other === uri);
  const unread = s.buddies.get(uri)?.item.querySelector('[data-field="unread"]');
  if (unread) unread.hidden = true;
  $("chat").hidden = false;
  $("chat").dataset.peer = uri;
  $("chat-peer").textContent = buddyName(uri);
  $("chat-log").replaceChildren(...chatOf(uri).map(messageItem));
  showTyping();
  $("chat-input").focus();
}

function messageItem(m) {
  const li = document.createElement("li");
  li.dataset.direction = m.direction;
  li.dataset.stored = String(m.stored);
  if (m.state) li.dataset.state = m.state;
  if (m.failed) li.classList.add("error");
  const meta = document.createElement("span");
  meta.className = "meta";
  const time = m.sent.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  meta.textContent = `${m.direction === "out" ? "me" : buddyName(m.peer)} ${time}${m.stored ? " (while you were away)" : ""}${m.state === "stored" ? " (stored for later)" : ""}${m.failed ? ` (not sent: ${m.failed})` : ""}`;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = m.text;
  li.append(meta, text);
  return li;
}

function addMessage(m) {
  chatOf(m.peer).push(m);
  if (!session.selected) {
    // The first conversation opens by itself (with this message in it).
    selectChat(m.peer);
  } else if (session.selected === m.peer) {
    $("chat-log").append(messageItem(m));
    $("chat-log").lastElementChild.scrollIntoView({ block: "nearest" });
  } else {
    const unread = session.buddies.get(m.peer)?.item.querySelector('[data-field="unread"]');
    if (unread) {
      unread.hidden = false;
      unread.textContent = String(Number(unread.textContent || 0) + 1);
    }
  }
}

function sendMessage(text) {
  const s = session;
  const peer = s.selected;
  // state: sending, then delivered (200: a device took it), stored (202: imppd keeps it
  // for the next sign-in) or failed.
  const m = { peer, direction: "out", text, sent: new Date(), stored: false, state: "sending", failed: null };
  addMessage(m);
  // Sending the message ends the composing state at both ends (RFC 3994 §3.3).
  stopComposing(peer, false);
  const settle = (state, failed) => {
    m.state = state;
    m.failed = failed;
    if (s.selected === peer) selectChat(peer);
  };
  const messager = new Messager(s.ua, UserAgent.makeURI(peer), text, "text/plain", {
    extraHeaders: [`Date: ${m.sent.toUTCString()}`],
  });
  messager
    .message({
      requestDelegate: {
        onAccept: (response) => settle(response.message.statusCode === 202 ? "stored" : "delivered", null),
        onReject: (response) => settle("failed", `${response.message.statusCode} ${response.message.reasonPhrase}`),
      },
    })
    .catch((e) => settle("failed", e.message));
}

function receiveMessage(message) {
  const s = session;
  const request = message.request;
  message.accept();
  if (!s) return;
  const peer = request.from.uri.toString();
  const type = (request.getHeader("Content-Type") || "text/plain").split(";")[0].trim().toLowerCase();
  if (type === ISCOMPOSING_TYPE) {
    const indication = readIsComposing(request.body);
    if (indication) peerComposing(peer, indication);
    return;
  }
  peerComposing(peer, { active: false, refresh: null });
  const date = Date.parse(request.getHeader("Date") || "");
  const sent = Number.isNaN(date) ? new Date() : new Date(date);
  // Date has whole seconds (it is the sending second, rounded down): one more second is
  // surely after the sending, so a message sent in the second of the sign-in counts as live.
  const stored = !Number.isNaN(date) && date + 1000 <= s.signedInAt;
  const text = type.startsWith("text/") ? request.body : `(a ${type} message)`;
  addMessage({ peer, direction: "in", text, sent, stored, state: null, failed: null });
}

// ---- is-composing (RFC 3994), both ways --------------------------------------------------

/** Someone else's composing state: shown until idle, a message, or the refresh runs out. */
function peerComposing(peer, { active, refresh }) {
  const s = session;
  const previous = s.composing.get(peer);
  if (previous) clearTimeout(previous);
  s.composing.delete(peer);
  if (active) {
    s.composing.set(peer, setTimeout(() => peerComposing(peer, { active: false }), (refresh || 120) * 1000));
  }
  const typing = s.buddies.get(peer)?.item.querySelector('[data-field="typing"]');
  if (typing) typing.hidden = !active;
  showTyping();
}

function showTyping() {
  const s = session;
  const typing = $("typing");
  const active = Boolean(s.selected && s.composing.has(s.selected));
  typing.hidden = !active;
  typing.textContent = active ? `${buddyName(s.selected)} is typing…` : "";
}

/** This user's composing state per peer: when the last active was sent, the idle timer. */
const mine = new Map();

function sendComposing(peer, state) {
  new Messager(session.ua, UserAgent.makeURI(peer), isComposing(state, COMPOSING_REFRESH_S), ISCOMPOSING_TYPE)
    .message()
    .catch(() => {});
}

function typed(peer) {
  const now = Date.now();
  const state = mine.get(peer) || { since: 0, timer: null };
  clearTimeout(state.timer);
  if (now - state.since > (COMPOSING_REFRESH_S - 10) * 1000) {
    sendComposing(peer, "active");
    state.since = now;
  }
  state.timer = setTimeout(() => stopComposing(peer, true), COMPOSING_IDLE_MS);
  mine.set(peer, state);
}

function stopComposing(peer, tell) {
  const state = mine.get(peer);
  if (!state) return;
  clearTimeout(state.timer);
  mine.delete(peer);
  if (tell) sendComposing(peer, "idle");
}

// ---- wiring ----------------------------------------------------------------------------

function wire() {
  const params = new URLSearchParams(location.search);
  $("user").value = params.get("user") || localStorage.getItem("impp.user") || "";
  $("domain").value = params.get("domain") || localStorage.getItem("impp.domain") || $("domain").value;
  $("server").value = params.get("server") || defaultServer();

  $("sign-in").addEventListener("submit", async (event) => {
    event.preventDefault();
    showSignInError("");
    $("sign-in-button").disabled = true;
    const [user, password, domain, server] = ["user", "password", "domain", "server"].map((f) => $(f).value.trim());
    try {
      if (!server) throw new Error("give the server's WebSocket address (ws://host:port/)");
      await signIn(user, password, domain, server);
      localStorage.setItem("impp.user", user);
      localStorage.setItem("impp.domain", domain);
      $("sign-in").hidden = true;
      $("app").hidden = false;
      $("me-uri").textContent = session.aor;
      const seeded = (params.get("buddies") || "").split(",").filter(Boolean);
      for (const b of [...storedBuddies(), ...seeded]) {
        const uri = addressOf(b, domain);
        if (uri) addBuddy(uri);
      }
      await publishStatus();
    } catch (e) {
      const s = session;
      session = null;
      if (s) s.ua.stop().catch(() => {});
      setConnection("signed-out", "Signed out");
      showSignInError(e.message || String(e));
    } finally {
      $("sign-in-button").disabled = false;
    }
  });

  $("status-form").addEventListener("submit", (event) => {
    event.preventDefault();
    publishStatus().catch((e) => {
      $("status-result").textContent = `Not published: ${e.message}`;
    });
  });

  $("add-buddy").addEventListener("submit", (event) => {
    event.preventDefault();
    const uri = addressOf($("buddy-uri").value, session.domain);
    if (!uri) return;
    addBuddy(uri);
    $("buddy-uri").value = "";
  });

  $("chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("chat-input").value;
    if (!text.trim() || !session.selected) return;
    $("chat-input").value = "";
    sendMessage(text);
  });

  $("chat-input").addEventListener("input", () => {
    if (!session?.selected) return;
    if ($("chat-input").value) typed(session.selected);
    else stopComposing(session.selected, true);
  });

  $("sign-out-button").addEventListener("click", () => signOut());
  // A page that goes away says goodbye if it still can (the server also sees the
  // WebSocket close and makes this contact unreachable at once).
  window.addEventListener("pagehide", () => {
    if (session) session.publisher?.unpublish().catch(() => {});
  });
}

wire();
