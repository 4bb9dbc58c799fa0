// The dashboard: routes, the WebSocket, the sessions list and the pages.
//
// Routes (location.hash):
//   #/                       home: the team; the WebSocket follows every session's live
//                            events (no history) to refresh the sessions list
//   #/session/<id>           the session, live: the WebSocket asks for its events after
//                            the last seq this page folded (0 the first time)
//   #/session/<id>/replay    the same page replaying the session's events
//
// Every event is folded into a SessionView (state.js) as it arrives; the pages render
// once per animation frame. `window.__ap` exposes the store and the connection for tests
// and for the browser console.

import { Api, tokenFromLocation } from "./api.js";
import { Live } from "./live.js";
import { SESSION_LEVEL, Sessions } from "./state.js";
import { SessionPage } from "./session_page.js";
import { HomePage, SessionsPanel, SubmitForm } from "./sessions.js";
import { setAttr, setText } from "./dom.js";

const LIVE_ONLY_SKIP_MAX = 1000; // more history than this on a live-only socket: reconnect past it
const POLL_MS = 15000; // the sessions list is also refreshed this often (other sessions' news)

const $ = (id) => document.getElementById(id);
const token = tokenFromLocation();
const api = new Api(token);
const store = new Sessions();
const main = $("page");
const pill = $("connection-state");
const pillText = $("connection-text");
const headSeq = $("head-seq");

let page = null;
let knownHead = 0; // the highest seq seen in the log
let caughtUp = false;
let derived = 0;

const sessions = new SessionsPanel($("sessions"), api);
const submit = new SubmitForm($("submit-form"), api, {
  onSubmitted(id) {
    sessions.refreshSoon();
    location.hash = `#/session/${encodeURIComponent(id)}`;
  },
});

const live = new Live({ token, onMessage, onState });

function noteHead(seq) {
  if (typeof seq === "number" && seq > knownHead) {
    knownHead = seq;
    setText(headSeq, `seq ${seq}`);
    setAttr(headSeq, "data-seq", seq);
  }
}

function onMessage(msg, conn) {
  const type = msg.type;
  if (type === "connected") {
    caughtUp = false;
    noteHead(msg.last_seq);
    if (conn.liveOnly && typeof msg.last_seq === "number" && msg.last_seq > conn.skipUntil) {
      // A live-only socket wants no history: skip it, or reconnect past a long one.
      const behind = msg.last_seq - conn.cursor;
      conn.skipUntil = msg.last_seq;
      conn.cursor = msg.last_seq;
      if (behind > LIVE_ONLY_SKIP_MAX) conn.reconnectNow();
    }
    if (page instanceof SessionPage && !conn.liveOnly) page.setCaughtUp(false);
    sessions.refreshSoon();
    return;
  }
  if (type === "caught_up") {
    caughtUp = true;
    noteHead(msg.seq);
    if (page instanceof SessionPage && !conn.liveOnly) page.setCaughtUp(true);
    return;
  }
  if (type === "resync") {
    conn.resync(msg.seq);
    return;
  }
  if (msg.derived) {
    // The server's own worker card: the page folds the same from the events.
    derived += 1;
    return;
  }
  if (typeof msg.seq !== "number" || !type) return;
  noteHead(msg.seq);
  if (conn.liveOnly) {
    if (msg.seq <= conn.skipUntil) return;
    conn.cursor = Math.max(conn.cursor, msg.seq);
    if (SESSION_LEVEL.has(type)) sessions.refreshSoon();
    if (page instanceof HomePage && (type.startsWith("objective_") || type === "worker_started")) page.refreshSoon();
    return;
  }
  const view = store.apply(msg);
  if (!view) return;
  if (view.session_id === conn.session) conn.cursor = view.last_seq;
  if (page instanceof SessionPage && page.id === view.session_id) page.onEvent(msg);
  if (caughtUp && SESSION_LEVEL.has(type)) sessions.refreshSoon();
}

function onState(state, info) {
  setAttr(pill, "data-state", state);
  const secs = info && info.retryInMs ? Math.max(1, Math.round(info.retryInMs / 1000)) : 0;
  const text = {
    connecting: "connecting…",
    connected: "connected",
    reconnecting: `reconnecting${secs ? ` in ${secs}s` : "…"}`,
    disconnected: `disconnected${secs ? ` · retry in ${secs}s` : ""}`,
  }[state];
  setText(pillText, text || state);
  setAttr(pill, "title", state === "connected" ? "live: events arrive as they happen" : "click to retry now");
}

pill.addEventListener("click", () => {
  if (live.state !== "connected") live.reconnectNow();
});

// --- routes ---------------------------------------------------------------------------

function parseRoute(hash) {
  const m = /^#\/session\/([^/]+)(\/replay)?\/?$/.exec(hash || "");
  if (m) {
    try {
      return { name: "session", id: decodeURIComponent(m[1]), replay: !!m[2] };
    } catch {
      /* a malformed id: home */
    }
  }
  return { name: "home" };
}

function route() {
  const r = parseRoute(location.hash);
  if (r.name === "session") {
    if (!(page instanceof SessionPage) || page.id !== r.id) {
      if (page) page.destroy();
      const view = store.view(r.id);
      page = new SessionPage(main, { id: r.id, view, api, askReason });
      caughtUp = false;
      live.open({ session: r.id, since: view.last_seq });
    }
    page.setReplay(r.replay);
  } else if (!(page instanceof HomePage)) {
    if (page) page.destroy();
    page = new HomePage(main, api, { onWorkers: (workers) => submit.setWorkers(workers) });
    document.title = "AP dashboard";
    live.open({ session: null, since: knownHead, liveOnly: true });
  }
  sessions.setSelected(r.name === "session" ? r.id : null);
}

// --- the reason dialog (reject, cancel) -------------------------------------------------

const dialog = $("reason-dialog");

/** Ask for a reason; resolve to the text ("" allowed) or null when the owner backs out. */
function askReason(title, hint) {
  if (!dialog || typeof dialog.showModal !== "function") {
    const answer = window.prompt(`${title}\n${hint}`, "");
    return Promise.resolve(answer === null ? null : answer.trim());
  }
  setText($("reason-title"), title);
  const input = $("reason-input");
  input.value = "";
  input.placeholder = hint;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm" ? input.value.trim() : null), { once: true });
    dialog.showModal();
    input.focus();
  });
}

// --- start ------------------------------------------------------------------------------

window.addEventListener("hashchange", route);
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) sessions.refreshSoon();
});
setInterval(() => {
  if (!document.hidden) sessions.refresh();
}, POLL_MS);

sessions.refresh();
api.workers().then((res) => {
  if (res.ok && Array.isArray(res.data)) submit.setWorkers(res.data);
});
route();

window.__ap = {
  store,
  live,
  api,
  get page() {
    return page;
  },
  get knownHead() {
    return knownHead;
  },
  get derived() {
    return derived;
  },
};
