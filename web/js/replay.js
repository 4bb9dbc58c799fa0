// Replay of a session: its events fetched once, the view folded up to a chosen seq.
//
// The same fold as the live page (state.js), so the state at the last seq is the live
// state. Moving forward folds only the new events; moving back folds again from the
// start (a 10,000-event session folds in a few milliseconds).
//
// Playing: a replay clock runs at `speed` × real time over the events' appended_at
// (the journal's clock, which grows with seq); a pause longer than MAX_GAP_S seconds in
// the log plays as MAX_GAP_S seconds. Speed "max" folds MAX_PER_TICK events per tick.
// No DOM here: the page drives tick() from requestAnimationFrame.

import { SessionView, apply } from "./state.js";

export const SPEEDS = ["1", "10", "100", "max"];
export const MAX_GAP_S = 2;
export const MAX_PER_TICK = 1000;
export const PAGE_LIMIT = 1000;

/**
 * Fetch every event of a session through `GET /api/sessions/{id}/events`, page by page.
 *
 * `getPage(since, limit)` returns the parsed `{"events", "next", "last_seq"}`. Stops at an
 * empty page, when `next` does not move forward, or at `last_seq`. Events come back in
 * seq order, each once.
 */
export async function fetchSessionEvents(getPage, { limit = PAGE_LIMIT, onProgress } = {}) {
  const events = [];
  let since = 0;
  let last = 0;
  for (let pages = 0; pages < 1_000_000; pages += 1) {
    const page = await getPage(since, limit);
    const batch = Array.isArray(page && page.events) ? page.events : [];
    for (const e of batch) {
      if (typeof e.seq === "number" && e.seq > last) {
        events.push(e);
        last = e.seq;
      }
    }
    if (onProgress) onProgress(events.length);
    if (!batch.length) break;
    const next = typeof page.next === "number" ? page.next : last;
    if (next <= since) break;
    since = next;
    if (typeof page.last_seq === "number" && since >= page.last_seq) break;
  }
  return events;
}

const timeOf = (e) => e.appended_at || e.ts || 0;

export class Replay {
  /**
   * @param {string} sessionId
   * @param {object[]} events the session's events in seq order (fetchSessionEvents)
   */
  constructor(sessionId, events, { feedLimit } = {}) {
    this.sessionId = sessionId;
    this.events = events;
    this.feedLimit = feedLimit;
    this.firstSeq = events.length ? events[0].seq : 0;
    this.lastSeq = events.length ? events[events.length - 1].seq : 0;
    this.minSeq = Math.max(0, this.firstSeq - 1); // the scrubber's start: nothing folded
    this.speed = "10";
    this.playing = false;
    this.clock = 0; // replay clock, in the log's seconds (appended_at)
    this.version = 0; // +1 whenever `view` is replaced (a seek back)
    this._reset();
  }

  _reset() {
    this.view = new SessionView(this.sessionId, this.feedLimit ? { feedLimit: this.feedLimit } : {});
    this.pos = 0; // index of the next event to fold
    this.seq = this.minSeq; // the seq the view is folded up to (the scrubber's value)
    this.version += 1;
  }

  get atEnd() {
    return this.pos >= this.events.length;
  }

  /** Fold the events up to `seq` (inclusive); return the events folded in this call. */
  seek(seq) {
    const target = Math.max(this.minSeq, Math.min(Number(seq) || 0, this.lastSeq));
    if (target < this.seq) this._reset();
    const folded = [];
    while (this.pos < this.events.length && this.events[this.pos].seq <= target) {
      const e = this.events[this.pos++];
      apply(this.view, e);
      folded.push(e);
    }
    this.seq = target;
    this.clock = this.pos > 0 ? timeOf(this.events[this.pos - 1]) : timeOf(this.events[0] || {});
    return folded;
  }

  /** Fold the next `n` events; return them. */
  step(n = 1) {
    const end = Math.min(this.events.length, this.pos + n);
    if (end === this.pos) return [];
    return this.seek(this.events[end - 1].seq);
  }

  play() {
    if (this.atEnd) this.seek(this.minSeq);
    this.playing = true;
    this.clock = this.pos > 0 ? timeOf(this.events[this.pos - 1]) : timeOf(this.events[0] || {});
  }

  pause() {
    this.playing = false;
  }

  setSpeed(speed) {
    this.speed = SPEEDS.includes(String(speed)) ? String(speed) : "10";
  }

  /**
   * Advance the replay clock by `dtMs` real milliseconds; fold what is due and return it.
   * Stops playing at the last event.
   */
  tick(dtMs) {
    if (!this.playing) return [];
    let folded;
    if (this.speed === "max") {
      folded = this.step(MAX_PER_TICK);
    } else {
      const next = this.events[this.pos];
      if (next && timeOf(next) - this.clock > MAX_GAP_S) this.clock = timeOf(next) - MAX_GAP_S;
      this.clock += (Math.max(0, dtMs) / 1000) * Number(this.speed);
      let end = this.pos;
      while (end < this.events.length && timeOf(this.events[end]) <= this.clock) end += 1;
      const clock = this.clock;
      folded = end > this.pos ? this.seek(this.events[end - 1].seq) : [];
      this.clock = clock;
    }
    if (this.atEnd) {
      this.seq = this.lastSeq;
      this.playing = false;
    }
    return folded;
  }
}
