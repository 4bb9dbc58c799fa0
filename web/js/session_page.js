// The page of one session (#/session/<id>, #/session/<id>/replay).
//
// It shows a SessionView: the live one (folded from the WebSocket by app.js) or, in
// replay mode, the replay's (folded from `GET /api/sessions/{id}/events` up to the
// scrubber's seq). Events only mark parts dirty; one render per animation frame
// updates what changed. The owner's actions act on the live session, so they are
// enabled from the live status whatever the replay shows.

import { el, setAttr, setText, show, clear, syncNewestFirst, frameScheduler } from "./dom.js";
import { fmtAgo, fmtClock, fmtDateTime, fmtDuration, shortSha, statusLabel } from "./format.js";
import { FlowView } from "./flow.js";
import { WorkersView } from "./workers.js";
import { Replay, SPEEDS, fetchSessionEvents } from "./replay.js";
import { viewToJSON } from "./state.js";

const WORKER_EVENTS = new Set(["worker_activity", "worker_metrics", "worker_error", "worker_started"]);
const RESULT_EVENTS = new Set(["objective_assigned", "objective_completed", "objective_failed"]);
const FLOW_EVENTS = new Set([
  "plan_proposed",
  "plan_revised",
  "scope_validated",
  "plan_awaiting_approval",
  "plan_approved",
  "wave_started",
  "wave_completed",
  "wave_merged",
  "merge_conflicted",
  "objective_started",
  "transcript_read",
  "scope_violated",
]);

export class SessionPage {
  /**
   * @param {HTMLElement} root the page's container (emptied)
   * @param {{id: string, view: import('./state.js').SessionView, api: import('./api.js').Api,
   *          askReason: (title: string, hint: string) => Promise<string|null>}} ctx
   */
  constructor(root, { id, view, api, askReason }) {
    this.id = id;
    this.liveView = view;
    this.api = api;
    this.askReason = askReason;
    this.replayOn = false;
    this.replay = null;
    this.replayState = "idle";
    this.replayToken = 0;
    this.caughtUp = false;
    this.destroyed = false;
    this.dirty = { all: true, flow: false, analysis: false, timeline: false, workers: new Set() };
    this.schedule = frameScheduler(() => this.render());
    this.build(root);
    this.tick = setInterval(() => {
      if (!this.replayOn && !this.liveView.ended && this.liveView.submitted_at) this.renderHeader();
    }, 1000);
    this.schedule();
  }

  destroy() {
    this.destroyed = true;
    clearInterval(this.tick);
    this.pauseReplay();
    this.flow.destroy();
  }

  get view() {
    return this.replayOn && this.replay ? this.replay.view : this.liveView;
  }

  // --- DOM --------------------------------------------------------------------------

  build(root) {
    clear(root);
    const h = (this.h = {});
    h.status = el("span", { class: "badge big", testid: "session-status" });
    h.request = el("h2", { class: "session-request", testid: "session-request" });
    h.sessionId = el("code", { class: "muted", testid: "session-id", text: this.id });
    h.meta = el("dl", { class: "meta", testid: "session-meta" });
    h.metaItems = {};
    for (const [key, label] of [
      ["repo", "repository"],
      ["base", "base"],
      ["branch", "branch"],
      ["submitted", "submitted"],
      ["duration", "duration"],
      ["progress", "objectives"],
      ["waves", "waves"],
      ["approved", "approved by"],
      ["seq", "events"],
    ]) {
      const dd = el("dd", { testid: `session-${key}` });
      const item = el("div", { class: "meta-item" }, el("dt", { text: label }), dd);
      h.metaItems[key] = { item, dd };
      h.meta.append(item);
    }
    h.reason = el("p", { class: "alert error", testid: "session-reason" });
    h.summary = el("p", { class: "summary", testid: "session-summary" });
    h.mergeConflict = el("p", { class: "alert error", testid: "merge-conflict" });
    h.cancelNote = el("p", { class: "alert warn", testid: "cancel-requested", text: "Cancel requested; the scheduler is ending the session." });
    h.commitText = el("pre", { class: "commit-message" });
    h.commit = el("details", { class: "commit", testid: "commit-message" }, el("summary", { text: "commit message" }), h.commitText);
    h.reports = el("ul", { class: "reports", testid: "reports" });
    h.missing = el("p", { class: "alert warn", testid: "session-missing", text: "No events of this session (yet). Check the id, or wait for the planner." });
    h.approval = el("p", { class: "alert warn", testid: "approval-needed", text: "The plan awaits your approval: check its scopes and conflicts below, then approve or reject it." });
    h.loading = el("p", { class: "muted loading", testid: "history-loading", text: "Loading the session's history…" });

    h.approve = el("button", { class: "btn primary", testid: "approve-button", text: "Approve plan", attrs: { type: "button", disabled: true } });
    h.reject = el("button", { class: "btn danger", testid: "reject-button", text: "Reject…", attrs: { type: "button", disabled: true } });
    h.cancel = el("button", { class: "btn", testid: "cancel-button", text: "Cancel session…", attrs: { type: "button", disabled: true } });
    h.replayToggle = el("a", { class: "btn ghost", testid: "replay-toggle", attrs: { href: `#/session/${encodeURIComponent(this.id)}/replay` } });
    h.actionError = el("p", { class: "action-error", testid: "action-error", attrs: { role: "alert" } });
    h.actionNote = el("p", { class: "action-note muted", testid: "action-note", attrs: { role: "status" } });
    h.approve.addEventListener("click", () => this.act("approve"));
    h.reject.addEventListener("click", () => this.act("reject"));
    h.cancel.addEventListener("click", () => this.act("cancel"));

    // Replay bar
    h.replayBar = el("section", { class: "replay-bar", testid: "replay-bar" });
    h.play = el("button", { class: "btn primary", testid: "replay-play", text: "▶ Play", attrs: { type: "button" } });
    h.pause = el("button", { class: "btn", testid: "replay-pause", text: "❚❚ Pause", attrs: { type: "button" } });
    h.stepBack = el("button", { class: "btn ghost", testid: "replay-step-back", text: "‹ prev", title: "the previous event", attrs: { type: "button" } });
    h.stepFwd = el("button", { class: "btn ghost", testid: "replay-step", text: "next ›", title: "the next event", attrs: { type: "button" } });
    h.speed = el("select", { testid: "replay-speed", title: "speed", attrs: { "aria-label": "replay speed" } });
    for (const s of SPEEDS) h.speed.append(el("option", { text: s === "max" ? "max" : `${s}×`, attrs: { value: s } }));
    h.speed.value = "10";
    h.scrubber = el("input", { class: "scrubber", testid: "replay-scrubber", attrs: { type: "range", min: 0, max: 0, step: 1, value: 0, "aria-label": "seq" } });
    h.replaySeq = el("output", { class: "replay-seq", testid: "replay-seq", text: "0" });
    h.replayLast = el("span", { class: "muted", testid: "replay-last" });
    h.replayTime = el("span", { class: "muted", testid: "replay-time" });
    h.replayStatus = el("span", { class: "replay-status", testid: "replay-status" });
    h.replayMatch = el("span", { class: "replay-match", testid: "replay-match" });
    h.replayExit = el("a", { class: "btn ghost", testid: "replay-exit", text: "Back to live", attrs: { href: `#/session/${encodeURIComponent(this.id)}` } });
    h.replayBar.append(
      el("span", { class: "replay-label", text: "Replay" }),
      h.stepBack,
      h.play,
      h.pause,
      h.stepFwd,
      h.speed,
      h.scrubber,
      el("span", { class: "replay-pos" }, "seq ", h.replaySeq, " / ", h.replayLast),
      h.replayTime,
      h.replayStatus,
      h.replayMatch,
      h.replayExit,
    );
    h.play.addEventListener("click", () => this.playReplay());
    h.pause.addEventListener("click", () => this.pauseReplay());
    h.stepFwd.addEventListener("click", () => this.stepReplay(1));
    h.stepBack.addEventListener("click", () => this.stepReplay(-1));
    h.speed.addEventListener("change", () => this.replay && this.replay.setSpeed(h.speed.value));
    h.scrubber.addEventListener("input", () => this.seekReplay(Number(h.scrubber.value)));

    // Panels
    h.analysis = el("div", { class: "panel-body", testid: "analysis-body" });
    h.validation = el("div", { class: "panel-body", testid: "validation-body" });
    h.timeline = el("ol", { class: "timeline", testid: "timeline-list" });
    const flowBody = el("div", { class: "panel-body flow" });
    const workersBody = el("div", { class: "panel-body" });
    const panel = (testid, title, body, extra = "") =>
      el("section", { class: `panel ${extra}`, testid }, el("h3", { class: "panel-title", text: title }), body);

    this.node = el(
      "section",
      { class: "session-page", testid: "session-page", data: { "session-id": this.id, mode: "live", "caught-up": "false" } },
      el(
        "header",
        { class: "session-head panel" },
        el("div", { class: "session-title" }, h.status, h.request),
        h.sessionId,
        h.meta,
        h.loading,
        h.missing,
        h.approval,
        h.cancelNote,
        h.reason,
        h.mergeConflict,
        h.summary,
        h.commit,
        h.reports,
        el("div", { class: "actions", testid: "actions" }, h.approve, h.reject, h.cancel, el("span", { class: "spacer" }), h.replayToggle),
        h.actionError,
        h.actionNote,
      ),
      h.replayBar,
      el("div", { class: "panel-row" }, panel("analysis", "Analysis", h.analysis), panel("validation", "Scopes and contracts", h.validation)),
      panel("flow", "Plan", flowBody, "flow-panel"),
      panel("workers", "Workers", workersBody),
      panel("timeline", "Timeline", h.timeline),
    );
    root.append(this.node);
    this.flow = new FlowView(flowBody);
    this.workers = new WorkersView(workersBody);
  }

  // --- events -----------------------------------------------------------------------

  /** A live event was folded into the live view. */
  onEvent(ev) {
    if (this.replayOn) {
      this.renderActions();
      return;
    }
    this.markDirty(ev);
  }

  setCaughtUp(flag) {
    this.caughtUp = flag;
    setAttr(this.node, "data-caught-up", flag ? "true" : "false");
    this.dirty.all = true;
    this.schedule();
  }

  markDirty(ev) {
    const d = this.dirty;
    const t = ev.type;
    if (WORKER_EVENTS.has(t)) {
      d.workers.add(ev.worker_id);
      if (t === "worker_error") d.timeline = true;
    } else if (RESULT_EVENTS.has(t)) {
      d.workers.add(ev.worker_id);
      d.flow = true;
      d.timeline = true;
    } else if (FLOW_EVENTS.has(t)) {
      d.flow = true;
      d.timeline = true;
    } else {
      d.timeline = true;
      if (t === "analysis_completed") d.analysis = true;
    }
    this.schedule();
  }

  markAll() {
    this.dirty.all = true;
    this.schedule();
  }

  // --- rendering --------------------------------------------------------------------

  render() {
    if (this.destroyed) return;
    const v = this.view;
    const d = this.dirty;
    const all = d.all;
    this.renderHeader();
    this.renderActions();
    if (all || d.analysis) this.renderAnalysis(v);
    if (all || d.flow) {
      this.renderValidation(v);
      this.flow.render(v);
    }
    if (all || d.workers.size) this.workers.render(v, all ? null : d.workers);
    if (all || d.timeline) syncNewestFirst(this.h.timeline, v.timeline, timelineEntry);
    if (this.replayOn) this.renderReplayBar();
    this.dirty = { all: false, flow: false, analysis: false, timeline: false, workers: new Set() };
  }

  renderHeader() {
    const v = this.view;
    const h = this.h;
    setAttr(this.node, "data-status", v.status);
    setAttr(h.status, "data-status", v.status);
    setText(h.status, statusLabel(v.status));
    setText(h.request, v.request || (v.events ? "(no request)" : this.id));
    const mi = h.metaItems;
    const set = (key, text, title) => {
      setText(mi[key].dd, text);
      setAttr(mi[key].dd, "title", title || null);
      show(mi[key].item, text !== "" && text != null);
    };
    set("repo", v.repo);
    set("base", v.base_ref && v.base_ref !== "HEAD" ? shortSha(v.base_ref) : v.base_ref, v.base_ref);
    set("branch", v.branch);
    set("submitted", v.submitted_at ? `${fmtDateTime(v.submitted_at)} (${fmtAgo(v.submitted_at)})` : "");
    const now = this.replayOn ? 0 : Date.now() / 1000;
    set("duration", v.submitted_at ? fmtDuration(v.durationS(v.ended ? 0 : now)) : "");
    set("progress", v.objectives.size ? `${v.objectivesCompleted()}/${v.objectives.size} completed` : "");
    const waves = [...v.waves.values()];
    const merged = waves.filter((w) => w.status === "merged").length;
    set("waves", waves.length ? `${merged}/${waves.length} merged` : "");
    set("approved", v.approved_by);
    set("seq", v.events ? `${v.events} (last seq ${v.last_seq})` : "");
    setAttr(mi.seq.dd, "data-last-seq", v.last_seq);

    show(h.loading, !this.replayOn && !this.caughtUp && v.events === 0);
    show(h.missing, !this.replayOn && this.caughtUp && v.events === 0);
    show(h.cancelNote, v.cancel_requested && !v.ended);
    show(h.approval, !this.replayOn && this.liveView.status === "awaiting_approval");
    setText(h.reason, v.reason);
    show(h.reason, !!v.reason);
    setText(h.summary, v.summary);
    show(h.summary, !!v.summary);
    const mc = v.merge_conflict;
    setText(h.mergeConflict, mc ? `Merging ${mc.objective_id} (wave ${mc.wave}) into the session branch conflicted on ${mc.paths.join(", ")}` : "");
    show(h.mergeConflict, !!mc);
    setText(h.commitText, v.commit_message || "");
    show(h.commit, !!v.commit_message);
    const reportsKey = JSON.stringify([...v.reports]);
    if (h.reports.dataset.key !== reportsKey) {
      h.reports.dataset.key = reportsKey;
      clear(h.reports);
      for (const [kind, path] of v.reports) {
        h.reports.append(el("li", { data: { kind } }, el("span", { class: "muted", text: `${kind} report ` }), el("code", { text: path })));
      }
    }
    show(h.reports, v.reports.size > 0);
    if (!this.replayOn) {
      const tag = v.status === "awaiting_approval" ? "⏸ " : v.status === "running" ? "▶ " : "";
      document.title = `${tag}${statusLabel(v.status)} · ${(v.request || this.id).slice(0, 48)} — AP`;
    }
  }

  /** Buttons follow the live session's status (submission.owner_action's rules). */
  renderActions() {
    const live = this.liveView;
    const busy = !!this.acting;
    setAttr(this.h.approve, "disabled", busy || live.status !== "awaiting_approval");
    setAttr(this.h.reject, "disabled", busy || live.status !== "awaiting_approval");
    setAttr(this.h.cancel, "disabled", busy || live.ended || live.events === 0);
    setText(this.h.replayToggle, this.replayOn ? "Replaying…" : live.ended ? "▶ Replay" : "▶ Replay so far");
    setAttr(this.h.replayToggle, "aria-disabled", this.replayOn ? "true" : null);
  }

  renderAnalysis(v) {
    const a = v.analysis;
    const body = this.h.analysis;
    if (body.analysisRef === a && body.firstChild) return;
    body.analysisRef = a;
    clear(body);
    if (!a) {
      body.append(el("p", { class: "muted", text: v.events ? "The planner is analysing the repository…" : "No analysis yet." }));
      return;
    }
    const listOf = (items, testid) =>
      el("ul", { class: "plain-list", testid }, items.map((x) => el("li", {}, el("code", { text: x }))));
    const more = (label, items, testid) =>
      items.length ? el("details", { class: "more" }, el("summary", { text: `${label} (${items.length})` }), listOf(items, testid)) : null;
    const parts = [
      el("p", {}, el("span", { class: "muted", text: "task type " }), el("span", { class: "badge task-type", testid: "analysis-task-type", text: a.task_type })),
      el("h4", { text: `Coordination points (${a.coordination_points.length})` }),
      a.coordination_points.length
        ? listOf(a.coordination_points, "analysis-coordination")
        : el("p", { class: "muted", testid: "analysis-coordination", text: "none" }),
      el("h4", { text: "Scope strategy" }),
      el("p", { class: "strategy", testid: "analysis-strategy", text: a.scope_strategy || "—" }),
      more("modules", a.modules, "analysis-modules"),
      more("entry points", a.entry_points, "analysis-entry-points"),
      more("test folders", a.test_dirs, "analysis-test-dirs"),
      more("config files", a.config_files, "analysis-config-files"),
    ];
    body.append(...parts.filter(Boolean));
  }

  renderValidation(v) {
    const body = this.h.validation;
    const key = JSON.stringify([v.plan_id, v.plan_revision, v.valid, v.conflicts, v.resolving, v.invalid_reason, v.revised, v.contracts]);
    if (body.dataset.key === key) return;
    body.dataset.key = key;
    clear(body);
    if (!v.plan_id) {
      body.append(el("p", { class: "muted", text: "No plan yet." }));
      return;
    }
    const state = v.valid === null ? "pending" : v.valid ? "valid" : "invalid";
    const text =
      state === "pending"
        ? "validating the scopes…"
        : state === "valid"
          ? "no two objectives of a wave can touch a common path"
          : `${v.conflicts.length} conflict${v.conflicts.length === 1 ? "" : "s"}${v.resolving ? "; the validator is revising the plan" : ""}`;
    body.append(
      el(
        "p",
        { class: `validation-state ${state}`, testid: "validation-state", data: { valid: state } },
        el("span", { class: "badge", data: { status: state === "valid" ? "completed" : state === "pending" ? "validating" : "failed" }, text: state }),
        ` plan ${v.plan_id}${v.plan_revision ? ` (revision ${v.plan_revision})` : ""}: ${text}`,
      ),
    );
    if (v.invalid_reason) body.append(el("p", { class: "alert error", testid: "invalid-reason", text: v.invalid_reason }));
    if (v.conflicts.length) body.append(conflictList(v.conflicts, "validation-conflicts"));
    for (const r of v.revised) {
      body.append(
        el(
          "details",
          { class: "revised", testid: "revised-plan", data: { "plan-id": r.plan_id } },
          el("summary", { text: `replaced plan ${r.plan_id}: ${r.objectives} objectives, ${r.conflicts.length} conflicts${r.reason ? ` (${r.reason})` : ""}` }),
          conflictList(r.conflicts, "revised-conflicts"),
        ),
      );
    }
    if (v.contracts.length) {
      body.append(
        el("h4", { text: `Integration contracts (${v.contracts.length})` }),
        el(
          "ul",
          { class: "plain-list contracts", testid: "contracts" },
          v.contracts.map((c) =>
            el(
              "li",
              { title: c.description || null },
              el("code", { text: c.name }),
              el("span", { class: "muted", text: ` ${c.provider} → ${c.consumers.join(", ") || "—"}` }),
            ),
          ),
        ),
      );
    }
  }

  // --- owner actions ----------------------------------------------------------------

  async act(action) {
    const h = this.h;
    setText(h.actionError, "");
    setText(h.actionNote, "");
    let reason;
    if (action === "reject") {
      reason = await this.askReason("Reject the plan", "Why? (shown in the session and the reports)");
      if (reason === null) return;
    } else if (action === "cancel") {
      reason = await this.askReason("Cancel the session", "Why? (optional)");
      if (reason === null) return;
    }
    this.acting = action;
    this.renderActions();
    const res = await this.api.act(this.id, action, reason);
    this.acting = null;
    if (this.destroyed) return;
    if (res.ok) {
      const seq = res.data && res.data.seq;
      setText(h.actionNote, `${action === "approve" ? "Approved" : action === "reject" ? "Rejected" : "Cancel requested"}${seq ? ` (seq ${seq})` : ""}.`);
    } else {
      setText(h.actionError, res.error);
    }
    this.renderActions();
  }

  // --- replay -----------------------------------------------------------------------

  /** Enter (true) or leave (false) replay mode; entering fetches the session's events. */
  setReplay(on) {
    if (on === this.replayOn) return;
    this.replayOn = on;
    setAttr(this.node, "data-mode", on ? "replay" : "live");
    this.node.classList.toggle("replaying", on);
    if (on) {
      this.loadReplay();
    } else {
      this.pauseReplay();
      this.replayToken += 1;
      this.replay = null;
    }
    this.markAll();
  }

  async loadReplay() {
    const token = ++this.replayToken;
    this.replay = null;
    this.setReplayState("loading", "loading events…");
    const getPage = async (since, limit) => {
      const res = await this.api.sessionEvents(this.id, since, limit);
      if (!res.ok) throw new Error(res.error);
      return res.data;
    };
    let events;
    try {
      events = await fetchSessionEvents(getPage, {
        onProgress: (n) => token === this.replayToken && this.setReplayState("loading", `loading… ${n} events`),
      });
    } catch (err) {
      if (token === this.replayToken) this.setReplayState("error", `cannot load the events: ${err.message}`);
      return;
    }
    if (token !== this.replayToken || this.destroyed) return;
    this.replay = new Replay(this.id, events, { feedLimit: this.liveView.feedLimit });
    this.replay.setSpeed(this.h.speed.value);
    this.replayVersion = this.replay.version;
    const s = this.h.scrubber;
    s.min = String(this.replay.minSeq);
    s.max = String(this.replay.lastSeq);
    this.setReplayState("ready", `${events.length} events`);
    this.markAll();
  }

  setReplayState(state, text) {
    this.replayState = state;
    setAttr(this.h.replayBar, "data-state", state);
    setText(this.h.replayStatus, text);
    this.renderReplayBar();
  }

  renderReplayBar() {
    const r = this.replay;
    const h = this.h;
    const ready = !!r;
    setAttr(h.play, "disabled", !ready || r.playing || !r.events.length);
    setAttr(h.pause, "disabled", !ready || !r.playing);
    setAttr(h.stepFwd, "disabled", !ready || r.atEnd);
    setAttr(h.stepBack, "disabled", !ready || r.pos === 0);
    setAttr(h.scrubber, "disabled", !ready || !r.events.length);
    if (!r) {
      setText(h.replaySeq, "0");
      setText(h.replayLast, "…");
      show(h.replayMatch, false);
      return;
    }
    if (document.activeElement !== h.scrubber || r.playing) h.scrubber.value = String(r.seq);
    setText(h.replaySeq, r.seq);
    setAttr(h.replaySeq, "data-seq", r.seq);
    setText(h.replayLast, r.lastSeq);
    setText(h.replayTime, r.view.last_ts ? fmtClock(r.view.last_ts) : "");
    if (this.replayState !== "loading" && this.replayState !== "error") {
      const state = r.playing ? "playing" : r.atEnd && r.events.length ? "ended" : "ready";
      if (state !== this.replayState) {
        this.replayState = state;
        setAttr(h.replayBar, "data-state", state);
        setText(h.replayStatus, state === "playing" ? `playing at ${r.speed === "max" ? "max" : `${r.speed}×`}` : state === "ended" ? "end of the session's events" : `${r.events.length} events`);
      }
    }
    // The end of a replay must show the live state: say whether it does.
    const atEnd = !r.playing && r.atEnd && r.events.length > 0;
    show(h.replayMatch, atEnd);
    if (atEnd && this.matchKey !== `${r.version}:${r.seq}:${this.liveView.last_seq}`) {
      this.matchKey = `${r.version}:${r.seq}:${this.liveView.last_seq}`;
      let match;
      if (this.liveView.last_seq > r.lastSeq) match = "behind";
      else if (this.liveView.last_seq < r.lastSeq) match = "ahead";
      else match = JSON.stringify(viewToJSON(r.view, { browser: true })) === JSON.stringify(viewToJSON(this.liveView, { browser: true })) ? "true" : "false";
      setAttr(h.replayMatch, "data-match", match);
      setText(
        h.replayMatch,
        match === "true"
          ? "✓ same state as live"
          : match === "false"
            ? "✗ differs from the live state"
            : match === "behind"
              ? `live has moved on to seq ${this.liveView.last_seq}`
              : "the live view has not caught up yet",
      );
    }
  }

  /** Mark what `folded` events changed; everything after a seek back. */
  afterReplayFold(folded) {
    const r = this.replay;
    if (r.version !== this.replayVersion || folded.length > 300) {
      this.replayVersion = r.version;
      this.dirty.all = true;
    } else {
      for (const ev of folded) this.markDirty(ev);
    }
    this.schedule();
  }

  playReplay() {
    const r = this.replay;
    if (!r || r.playing) return;
    r.setSpeed(this.h.speed.value);
    const before = r.version;
    r.play();
    if (r.version !== before) this.afterReplayFold([]);
    let last = performance.now();
    const loop = (t) => {
      if (this.destroyed || this.replay !== r || !r.playing) return;
      const folded = r.tick(Math.min(1000, t - last));
      last = t;
      if (folded.length) this.afterReplayFold(folded);
      this.renderReplayBar();
      if (r.playing) this.raf = requestAnimationFrame(loop);
      else this.schedule();
    };
    this.raf = requestAnimationFrame(loop);
    this.renderReplayBar();
  }

  pauseReplay() {
    if (this.raf) cancelAnimationFrame(this.raf);
    this.raf = 0;
    if (this.replay) {
      this.replay.pause();
      this.renderReplayBar();
      this.schedule();
    }
  }

  seekReplay(seq) {
    const r = this.replay;
    if (!r) return;
    this.pauseReplay();
    this.afterReplayFold(r.seek(seq));
  }

  stepReplay(direction) {
    const r = this.replay;
    if (!r) return;
    this.pauseReplay();
    if (direction > 0) {
      this.afterReplayFold(r.step(1));
    } else {
      const prev = r.pos >= 2 ? r.events[r.pos - 2].seq : r.minSeq;
      this.afterReplayFold(r.seek(prev));
    }
  }
}

function conflictList(conflicts, testid) {
  return el(
    "ul",
    { class: "plain-list conflicts", testid },
    conflicts.map((c) =>
      el(
        "li",
        { class: "conflict", data: { wave: c.wave } },
        `wave ${c.wave}: `,
        el("code", { text: c.objective_a }),
        " and ",
        el("code", { text: c.objective_b }),
        " both touch ",
        el("code", { class: "witness", testid: "witness", text: c.witness }),
        el("span", { class: "muted", text: ` (${c.pattern_a} ∩ ${c.pattern_b})` }),
      ),
    ),
  );
}

function timelineEntry(t) {
  return el(
    "li",
    { class: `timeline-entry level-${t.level}`, testid: "timeline-entry", data: { seq: t.seq, type: t.type } },
    el("time", { class: "tl-time", text: fmtClock(t.ts), title: fmtDateTime(t.ts) }),
    el("span", { class: "tl-type", text: t.type.replace(/_/g, " ") }),
    el("span", { class: "tl-text", text: t.text }),
  );
}
