// The WebSocket to the broadcaster: `/ws?since=SEQ&session=ID&token=T`.
//
// The server sends `connected`, then every event with seq > since (history, then live,
// in seq order), `caught_up` once the history is sent, derived `worker_metrics` cards,
// and `resync` (then closes) when this client fell behind. The client sends nothing.
//
// `cursor` is the last seq the page applied; every (re)connection asks for the events
// after it, so a reconnect brings no duplicates and no gaps. After a close or an error
// the client reconnects with exponential back-off, 0.5 s doubling to 10 s, reset once a
// connection is established again.
//
// States (`onState(state, info)`): "connecting" (first attempt), "connected",
// "reconnecting" (waiting to retry; info.retryInMs), "disconnected" (retries at the 10 s
// cap, or the browser is offline; it keeps retrying).

export const BACKOFF_MIN_MS = 500;
export const BACKOFF_MAX_MS = 10000;

export class Live {
  constructor({ token = "", onMessage, onState, WebSocketImpl, location } = {}) {
    this.token = token;
    this.onMessage = onMessage || (() => {});
    this.onState = onState || (() => {});
    this.WS = WebSocketImpl || globalThis.WebSocket;
    this.loc = location || globalThis.location;
    this.ws = null;
    this.session = null;
    this.cursor = 0;
    this.liveOnly = false;
    this.skipUntil = 0; // live-only: events up to here are history to skip
    this.attempt = 0;
    this.timer = 0;
    this.state = "";
    this.stateInfo = {};
    this.opened = 0; // connections opened, for tests and the header tooltip
  }

  /**
   * Subscribe to one session (its history after `since`, then live) or, with
   * `session: null`, to every session's live events only. Closes any current socket.
   */
  open({ session = null, since = 0, liveOnly = false } = {}) {
    this.session = session;
    this.cursor = since;
    this.liveOnly = liveOnly;
    this.skipUntil = liveOnly ? since : 0;
    this.attempt = 0;
    this._connect();
  }

  /** Close for good (no reconnect). */
  close() {
    clearTimeout(this.timer);
    this.timer = 0;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      try {
        ws.close(1000, "bye");
      } catch {
        /* already closed */
      }
    }
  }

  /** Reconnect at once (the header's retry button, a resync, a live-only skip). */
  reconnectNow() {
    this.attempt = 0;
    this._connect();
  }

  /** The server said this client fell behind: reconnect from `seq` (or our cursor). */
  resync(seq) {
    if (typeof seq === "number" && seq >= 0) this.cursor = Math.min(this.cursor, seq);
    this.reconnectNow();
  }

  url() {
    const proto = this.loc.protocol === "https:" ? "wss:" : "ws:";
    const q = new URLSearchParams();
    q.set("since", String(this.cursor));
    if (this.session) q.set("session", this.session);
    if (this.token) q.set("token", this.token);
    return `${proto}//${this.loc.host}/ws?${q}`;
  }

  _setState(state, info = {}) {
    this.state = state;
    this.stateInfo = info;
    this.onState(state, info);
  }

  _connect() {
    this.close();
    if (!this.attempt) this._setState("connecting");
    let ws;
    try {
      ws = new this.WS(this.url());
    } catch (err) {
      this._scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.opened += 1;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.attempt = 0;
      this._setState("connected");
    };
    ws.onmessage = (e) => {
      if (this.ws !== ws) return;
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch {
        return; // not JSON: nothing of ours
      }
      // A frame holds one message, or an array of messages in order.
      for (const m of Array.isArray(msg) ? msg : [msg]) {
        if (this.ws !== ws) return; // a message closed it (resync)
        if (m && typeof m === "object") this.onMessage(m, this);
      }
    };
    ws.onerror = () => {}; // a close follows
    ws.onclose = () => {
      if (this.ws !== ws) return; // replaced or closed on purpose
      this.ws = null;
      this._scheduleReconnect();
    };
  }

  _scheduleReconnect() {
    clearTimeout(this.timer);
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    this.attempt += 1;
    const offline = typeof navigator !== "undefined" && navigator.onLine === false;
    const state = delay >= BACKOFF_MAX_MS || offline ? "disconnected" : "reconnecting";
    this._setState(state, { retryInMs: delay, retryAt: Date.now() + delay, attempt: this.attempt });
    this.timer = setTimeout(() => {
      this.timer = 0;
      this._connect();
    }, delay);
  }
}
