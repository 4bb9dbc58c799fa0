// The session view, folded from events in the browser.
//
// A port of ap_actors/projections.py (`apply`, `Sessions`, `view_to_json`): the same
// events folded in the same order give the same view, field for field, so the live page,
// a replay and `GET /api/sessions/{id}` agree. Rules kept as they are there:
//   status analysing → planning → validating → awaiting_approval → running →
//   completed | failed | cancelled, and an ended session stays ended; the current plan
//   is the latest proposed or revised one; an objective's result counts only for its
//   latest attempt's worker while it is assigned or running.
// Differences, all of them additions that viewToJSON() leaves out unless asked:
//   - a worker's feed keeps `feedLimit` activities (default FEED_LIMIT = 200, the
//     dashboard's DOM budget) instead of 50; viewToJSON() trims it back to 50;
//   - activities keep their exit_code; workers keep `last_result` and `last_error`;
//   - `timeline`: the latest TIMELINE_LIMIT session-level events as one line each;
//   - an event whose seq is not above the view's last_seq is a duplicate (a reconnect
//     or an overlapping page) and is not folded again.
//
// No DOM here: this module is imported by the page and by `node web/tests/state_check.mjs`.

export const ENDED = new Set(["completed", "failed", "cancelled"]);
export const ACTIVITY_FEED = 50; // projections.ACTIVITY_FEED: the feed of view_to_json
export const FEED_LIMIT = 200; // activities kept per worker in the browser (and its DOM)
export const TIMELINE_LIMIT = 300; // session-level entries kept for the timeline

// Defaults of every event field beyond id/session_id/ts/source (ap_actors/events.py), so
// an event that arrives without a field folds as if the field had its default.
const OBJECTIVE_DEFAULTS = {
  id: "",
  title: "",
  description: "",
  wave: 1,
  scope_touch: [],
  scope_forbid: [],
  worker: "",
  depends_on: [],
  command: null,
  capabilities: [],
};
const CONTRACT_DEFAULTS = { name: "", provider: "", consumers: [], description: "" };
const CONFLICT_DEFAULTS = {
  wave: 0,
  objective_a: "",
  objective_b: "",
  pattern_a: "",
  pattern_b: "",
  witness: "",
};

export const EVENT_FIELDS = {
  actor_started: { actor: "", pid: 0, restarts: 0, argv: [] },
  actor_exited: {
    actor: "",
    pid: 0,
    exit_code: null,
    signal: null,
    restarting_in_s: null,
    gave_up: false,
    reason: "",
  },
  request_submitted: {
    request: "",
    repo: "",
    base_ref: "HEAD",
    plan_file: null,
    auto_approve: false,
    team: [],
    resolve_conflicts: false,
  },
  analysis_completed: {
    task_type: "feature",
    modules: [],
    entry_points: [],
    test_dirs: [],
    config_files: [],
    coordination_points: [],
    scope_strategy: "",
  },
  plan_proposed: { plan_id: "", objectives: [], contracts: [] },
  scope_validated: { plan_id: "", valid: false, conflicts: [], resolving: false, reason: "" },
  plan_revised: { plan_id: "", revises: "", objectives: [], contracts: [] },
  plan_awaiting_approval: { plan_id: "" },
  cancel_requested: { by: "owner", reason: "" },
  plan_approved: { plan_id: "", by: "", reason: null },
  plan_rejected: { plan_id: "", by: "", reason: null },
  wave_started: { wave: 0, objective_ids: [] },
  wave_completed: { wave: 0, objective_ids: [] },
  wave_merged: { wave: 0, objective_ids: [], branch: "", commit: "" },
  merge_conflicted: { wave: 0, objective_id: "", branch: "", paths: [] },
  objective_assigned: { objective_id: "", worker_id: "", attempt: 1, base: "", timeout_s: 0 },
  objective_started: { objective_id: "", worker_id: "", attempt: 1, workdir: "", transcript: "" },
  worker_started: { worker_id: "", pid: 0, argv: [], objective_id: "" },
  worker_activity: {
    worker_id: "",
    objective_id: "",
    activity_type: "message",
    tool_name: null,
    description: "",
    file_path: null,
    exit_code: null,
  },
  worker_metrics: {
    worker_id: "",
    tasks_completed: 0,
    tasks_failed: 0,
    tools_used: {},
    files_modified: 0,
    uptime_seconds: 0,
    cpu_percent: 0,
    rss_bytes: 0,
    input_tokens: 0,
    output_tokens: 0,
    cost_usd: 0,
  },
  worker_error: { worker_id: "", error: "", objective_id: null },
  transcript_read: { objective_id: "", worker_id: "", attempt: 1, transcript: "", lines: 0 },
  objective_completed: {
    objective_id: "",
    worker_id: "",
    files_modified: [],
    exit_code: 0,
    duration_s: 0,
    reason: null,
    input_tokens: 0,
    output_tokens: 0,
    cost_usd: 0,
  },
  objective_failed: {
    objective_id: "",
    worker_id: "",
    files_modified: [],
    exit_code: null,
    duration_s: 0,
    reason: null,
    input_tokens: 0,
    output_tokens: 0,
    cost_usd: 0,
  },
  scope_violated: { objective_id: "", worker_id: "", paths: [], rule: "outside_touch" },
  session_completed: { summary: "", branch: "", commit_message: null },
  session_failed: { reason: "", branch: "", commit_message: null },
  session_cancelled: { reason: "", branch: "", commit_message: null },
  report_written: { kind: "analysis", path: "" },
};

/** Events that change a session's row in the sessions list. */
export const SESSION_LEVEL = new Set([
  "request_submitted",
  "analysis_completed",
  "plan_proposed",
  "scope_validated",
  "plan_revised",
  "plan_awaiting_approval",
  "plan_approved",
  "plan_rejected",
  "cancel_requested",
  "wave_started",
  "wave_completed",
  "wave_merged",
  "merge_conflicted",
  "objective_completed",
  "objective_failed",
  "session_completed",
  "session_failed",
  "session_cancelled",
]);

const num = (x, d = 0) => (typeof x === "number" && Number.isFinite(x) ? x : d);
const str = (x, d = "") => (typeof x === "string" ? x : d);
const list = (x) => (Array.isArray(x) ? x : []);
const clone = (x) => (x === undefined ? x : JSON.parse(JSON.stringify(x)));

function withDefaults(defaults, obj) {
  const out = {};
  for (const [k, d] of Object.entries(defaults)) {
    const v = obj == null ? undefined : obj[k];
    out[k] = v === undefined ? clone(d) : v;
  }
  return out;
}

/**
 * Return an event with every field of its type present (defaults filled in), plus the
 * common id/session_id/ts/source and the record's seq/appended_at. Unknown types keep
 * their own fields.
 */
export function normalizeEvent(raw) {
  const defaults = EVENT_FIELDS[raw.type];
  const ev = {
    seq: num(raw.seq),
    appended_at: num(raw.appended_at),
    type: str(raw.type),
    id: str(raw.id),
    session_id: str(raw.session_id),
    ts: num(raw.ts),
    source: str(raw.source),
  };
  if (!defaults) return Object.assign({}, raw, ev);
  return Object.assign(ev, withDefaults(defaults, raw));
}

/** The event as msgspec.to_builtins gives it: its tag as "type", then its fields. */
function eventBody(ev) {
  const out = { type: ev.type, id: ev.id, session_id: ev.session_id, ts: ev.ts, source: ev.source };
  for (const k of Object.keys(EVENT_FIELDS[ev.type] || {})) out[k] = clone(ev[k]);
  return out;
}

const objective = (o) => withDefaults(OBJECTIVE_DEFAULTS, o);
const contract = (c) => withDefaults(CONTRACT_DEFAULTS, c);
const conflict = (c) => withDefaults(CONFLICT_DEFAULTS, c);

function newObjectiveView(o) {
  return {
    objective: o,
    status: "pending",
    worker_id: "",
    attempt: 0,
    failures: 0,
    base: "",
    timeout_s: 0,
    workdir: "",
    transcript: "",
    transcript_read: false,
    pid: 0,
    files_modified: [],
    exit_code: null,
    reason: null,
    duration_s: 0,
    assigned_at: 0,
    started_at: 0,
    ended_at: 0,
    violations: [],
    input_tokens: 0,
    output_tokens: 0,
    cost_usd: 0,
  };
}

function newWaveView(number) {
  return { number, objective_ids: [], status: "pending", commit: "", started_at: 0, ended_at: 0 };
}

function newWorkerView(workerId) {
  return {
    worker_id: workerId,
    status: "idle",
    objective_id: "",
    pid: 0,
    tasks_completed: 0,
    tasks_failed: 0,
    tools_used: new Map(),
    files_modified: [],
    activities: 0,
    errors: 0,
    feed: [],
    cpu_percent: 0,
    rss_bytes: 0,
    uptime_seconds: 0,
    input_tokens: 0,
    output_tokens: 0,
    cost_usd: 0,
    // browser-only
    last_result: "", // "completed" | "failed" | "" (no result yet)
    last_error: null, // {seq, ts, error, objective_id}
  };
}

/** Everything known about one session (projections.SessionView). */
export class SessionView {
  constructor(sessionId, { feedLimit = FEED_LIMIT } = {}) {
    this.session_id = sessionId;
    this.status = "analysing";
    this.request = "";
    this.repo = "";
    this.base_ref = "HEAD";
    this.plan_file = null;
    this.auto_approve = false;
    this.resolve_conflicts = false;
    this.team = [];
    this.submitted_at = 0;
    this.ended_at = 0;
    this.analysis = null;
    this.plan_id = "";
    this.plan_revision = 0;
    this.revised = [];
    this.objectives = new Map(); // id -> objective view, plan order
    this.contracts = [];
    this.valid = null;
    this.conflicts = [];
    this.resolving = false;
    this.invalid_reason = "";
    this.approved_by = "";
    this.awaiting_since = 0;
    this.waves = new Map(); // number -> wave view
    this.workers = new Map(); // id -> worker view, first seen first
    this.merge_conflict = null;
    this.cancel_requested = false;
    this.branch = "";
    this.commit_message = null;
    this.summary = "";
    this.reason = "";
    this.reports = new Map(); // kind -> path
    this.events = 0;
    this.last_seq = 0;
    this.last_ts = 0;
    // browser-only
    this.feedLimit = feedLimit;
    this.timeline = []; // {seq, ts, type, level, text}
    this.plan_version = 0; // +1 whenever the set of objectives is replaced (for renderers)
  }

  get ended() {
    return ENDED.has(this.status);
  }

  /** Seconds from submission to the end (or to `now` / the last event). */
  durationS(now = 0) {
    const end = this.ended_at || now || this.last_ts;
    return this.submitted_at ? Math.max(0, end - this.submitted_at) : 0;
  }

  /** The plan's wave numbers, ascending. */
  waveNumbers() {
    const set = new Set();
    for (const o of this.objectives.values()) set.add(o.objective.wave);
    return [...set].sort((a, b) => a - b);
  }

  objectivesOf(wave) {
    return [...this.objectives.values()].filter((o) => o.objective.wave === wave);
  }

  objectivesCompleted() {
    let n = 0;
    for (const o of this.objectives.values()) if (o.status === "completed") n += 1;
    return n;
  }

  /** Conflicts of the current plan that involve objective `id`. */
  conflictsOf(id) {
    return this.conflicts.filter((c) => c.objective_a === id || c.objective_b === id);
  }
}

function setPlan(view, planId, objectives, contracts) {
  view.plan_id = planId;
  view.objectives = new Map();
  for (const raw of list(objectives)) {
    const o = objective(raw);
    view.objectives.set(o.id, newObjectiveView(o));
  }
  view.contracts = list(contracts).map(contract);
  view.valid = null;
  view.conflicts = [];
  view.resolving = false;
  view.invalid_reason = "";
  const waves = new Map();
  for (const ov of view.objectives.values()) {
    const o = ov.objective;
    if (!waves.has(o.wave)) waves.set(o.wave, newWaveView(o.wave));
    waves.get(o.wave).objective_ids.push(o.id);
  }
  view.waves = new Map([...waves.entries()].sort((a, b) => a[0] - b[0]));
  view.plan_version += 1;
}

function worker(view, workerId) {
  let w = view.workers.get(workerId);
  if (!w) {
    w = newWorkerView(workerId);
    view.workers.set(workerId, w);
  }
  return w;
}

function wave(view, number) {
  let w = view.waves.get(number);
  if (!w) {
    w = newWaveView(number);
    view.waves.set(number, w);
  }
  return w;
}

function end(view, status, ts) {
  if (!view.ended) {
    view.status = status;
    view.ended_at = ts;
  }
}

/**
 * Fold one event of the session into `view` and return true (false for a duplicate: a
 * seq not above the view's last_seq). `raw` is the dashboard's flat event JSON
 * ({seq, appended_at, type, id, session_id, ts, source, ...fields}). Events of other
 * sessions must not be passed; unknown types are counted and otherwise ignored.
 */
export function apply(view, raw) {
  const ev = normalizeEvent(raw);
  const seq = ev.seq;
  if (seq && seq <= view.last_seq) return false;
  view.events += 1;
  if (seq) view.last_seq = seq;
  if (ev.ts) view.last_ts = Math.max(view.last_ts, ev.ts);
  let timeline = true;
  switch (ev.type) {
    case "request_submitted":
      view.request = ev.request;
      view.repo = ev.repo;
      view.base_ref = ev.base_ref;
      view.plan_file = ev.plan_file;
      view.auto_approve = ev.auto_approve;
      view.resolve_conflicts = ev.resolve_conflicts;
      view.team = [...list(ev.team)];
      view.submitted_at = ev.ts;
      break;
    case "analysis_completed":
      view.analysis = eventBody(ev);
      if (view.status === "analysing") view.status = "planning";
      break;
    case "plan_proposed":
    case "plan_revised":
      if (ev.type === "plan_revised") {
        view.plan_revision += 1;
        view.revised.push({
          plan_id: view.plan_id,
          objectives: view.objectives.size,
          valid: view.valid,
          conflicts: [...view.conflicts],
          reason: view.invalid_reason,
        });
      }
      setPlan(view, ev.plan_id, ev.objectives, ev.contracts);
      if (!view.ended) view.status = "validating";
      break;
    case "scope_validated":
      if (ev.plan_id !== view.plan_id) break;
      view.valid = ev.valid;
      view.conflicts = list(ev.conflicts).map(conflict);
      view.resolving = ev.resolving;
      view.invalid_reason = ev.reason;
      break;
    case "plan_awaiting_approval":
      if (ev.plan_id !== view.plan_id) break;
      view.awaiting_since = ev.ts;
      if (!view.ended) view.status = "awaiting_approval";
      break;
    case "plan_approved":
      if (ev.plan_id !== view.plan_id) break;
      view.approved_by = ev.by;
      if (!view.ended) view.status = "running";
      break;
    case "plan_rejected":
      view.reason = `plan rejected by ${ev.by}` + (ev.reason ? `: ${ev.reason}` : "");
      break;
    case "cancel_requested":
      view.cancel_requested = true;
      break;
    case "wave_started": {
      const w = wave(view, ev.wave);
      w.status = "running";
      w.started_at = ev.ts;
      break;
    }
    case "wave_completed": {
      const w = wave(view, ev.wave);
      if (w.status !== "merged") w.status = "completed";
      w.ended_at = ev.ts;
      break;
    }
    case "wave_merged": {
      const w = wave(view, ev.wave);
      w.status = "merged";
      w.commit = ev.commit;
      view.branch = ev.branch || view.branch;
      break;
    }
    case "merge_conflicted":
      view.merge_conflict = eventBody(ev);
      if (view.waves.has(ev.wave)) view.waves.get(ev.wave).status = "failed";
      break;
    case "objective_assigned": {
      const o = view.objectives.get(ev.objective_id);
      if (o && ev.attempt > o.attempt) {
        o.attempt = ev.attempt;
        o.worker_id = ev.worker_id;
        o.status = "assigned";
        o.base = ev.base;
        o.timeout_s = ev.timeout_s;
        o.assigned_at = ev.ts;
        o.reason = null;
        // Nothing of the previous attempt's run belongs to this one.
        o.pid = 0;
        o.started_at = 0;
        o.ended_at = 0;
        o.workdir = "";
        o.transcript = "";
        o.transcript_read = false;
      }
      const w = worker(view, ev.worker_id);
      w.status = "busy";
      w.objective_id = ev.objective_id;
      break;
    }
    case "objective_started": {
      const o = view.objectives.get(ev.objective_id);
      if (o && ev.attempt === o.attempt && o.status === "assigned") {
        o.status = "running";
        o.started_at = ev.ts;
        o.workdir = ev.workdir;
        o.transcript = ev.transcript;
      }
      break;
    }
    case "worker_started": {
      const o = view.objectives.get(ev.objective_id);
      if (o && o.worker_id === ev.worker_id) o.pid = ev.pid;
      worker(view, ev.worker_id).pid = ev.pid;
      timeline = false;
      break;
    }
    case "objective_completed":
    case "objective_failed":
      objectiveResult(view, ev);
      break;
    case "transcript_read": {
      const o = view.objectives.get(ev.objective_id);
      if (o && o.attempt === ev.attempt && o.worker_id === ev.worker_id) o.transcript_read = true;
      timeline = false;
      break;
    }
    case "scope_violated": {
      const o = view.objectives.get(ev.objective_id);
      if (o) o.violations = [...new Set([...o.violations, ...list(ev.paths)])].sort(byCodePoint);
      break;
    }
    case "worker_activity":
      activity(view, ev);
      timeline = false;
      break;
    case "worker_error": {
      const w = worker(view, ev.worker_id);
      w.errors += 1;
      w.last_error = { seq, ts: ev.ts, error: ev.error, objective_id: ev.objective_id || "" };
      break;
    }
    case "worker_metrics": {
      const w = worker(view, ev.worker_id);
      w.cpu_percent = num(ev.cpu_percent);
      w.rss_bytes = num(ev.rss_bytes);
      w.uptime_seconds = num(ev.uptime_seconds);
      w.input_tokens = Math.max(w.input_tokens, num(ev.input_tokens));
      w.output_tokens = Math.max(w.output_tokens, num(ev.output_tokens));
      w.cost_usd = Math.max(w.cost_usd, num(ev.cost_usd));
      timeline = false;
      break;
    }
    case "report_written":
      view.reports.set(ev.kind, ev.path);
      break;
    case "session_completed":
      if (view.ended) break;
      view.summary = ev.summary;
      view.branch = ev.branch || view.branch;
      view.commit_message = ev.commit_message;
      end(view, "completed", ev.ts);
      break;
    case "session_failed":
      if (view.ended) break;
      view.reason = ev.reason;
      view.branch = ev.branch || view.branch;
      view.commit_message = ev.commit_message || view.commit_message;
      end(view, "failed", ev.ts);
      break;
    case "session_cancelled":
      if (view.ended) break;
      view.reason = ev.reason || view.reason;
      view.branch = ev.branch || view.branch;
      end(view, "cancelled", ev.ts);
      break;
    default:
      timeline = EVENT_FIELDS[ev.type] !== undefined && ev.type !== "actor_started";
  }
  if (timeline) {
    view.timeline.push({ seq, ts: ev.ts, type: ev.type, level: levelOf(ev), text: describeEvent(ev) });
    if (view.timeline.length > TIMELINE_LIMIT) view.timeline.splice(0, view.timeline.length - TIMELINE_LIMIT);
  }
  return true;
}

function byCodePoint(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

function objectiveResult(view, ev) {
  const w = worker(view, ev.worker_id);
  const o = view.objectives.get(ev.objective_id);
  if (o && o.worker_id === ev.worker_id && (o.status === "assigned" || o.status === "running")) {
    const completed = ev.type === "objective_completed";
    o.status = completed ? "completed" : "failed";
    o.files_modified = [...list(ev.files_modified)];
    o.exit_code = ev.exit_code;
    o.reason = ev.reason;
    o.duration_s = ev.duration_s;
    o.ended_at = ev.ts;
    o.input_tokens += num(ev.input_tokens);
    o.output_tokens += num(ev.output_tokens);
    o.cost_usd += num(ev.cost_usd);
    if (completed) {
      w.tasks_completed += 1;
      for (const path of list(ev.files_modified)) {
        if (!w.files_modified.includes(path)) w.files_modified.push(path);
      }
    } else {
      o.failures += 1;
      w.tasks_failed += 1;
    }
    w.last_result = o.status;
  }
  if (w.objective_id === ev.objective_id) {
    w.status = "idle";
    w.objective_id = "";
    w.pid = 0;
  }
}

function activity(view, ev) {
  const w = worker(view, ev.worker_id);
  w.activities += 1;
  if (ev.tool_name) w.tools_used.set(ev.tool_name, (w.tools_used.get(ev.tool_name) || 0) + 1);
  w.feed.push({
    seq: ev.seq,
    ts: ev.ts,
    activity_type: ev.activity_type,
    description: ev.description,
    tool_name: ev.tool_name,
    file_path: ev.file_path,
    objective_id: ev.objective_id,
    exit_code: ev.exit_code, // browser-only
  });
  if (w.feed.length > view.feedLimit) w.feed.splice(0, w.feed.length - view.feedLimit);
}

// --- one line per session-level event (the timeline) ----------------------------------

function levelOf(ev) {
  switch (ev.type) {
    case "objective_failed":
    case "merge_conflicted":
    case "session_failed":
    case "worker_error":
    case "scope_violated":
    case "plan_rejected":
      return "error";
    case "scope_validated":
      return ev.valid ? "ok" : "warn";
    case "session_cancelled":
    case "cancel_requested":
    case "plan_awaiting_approval":
    case "actor_exited":
      return "warn";
    case "objective_completed":
    case "wave_merged":
    case "session_completed":
    case "plan_approved":
      return "ok";
    default:
      return "info";
  }
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** One line saying what an event means, for the timeline. */
export function describeEvent(ev) {
  switch (ev.type) {
    case "request_submitted":
      return `request submitted${ev.auto_approve ? " (approve without asking)" : ""}: ${ev.request}`;
    case "analysis_completed":
      return `analysis: ${ev.task_type}, ${plural(list(ev.modules).length, "module")}, ${plural(
        list(ev.coordination_points).length,
        "coordination point",
      )}`;
    case "plan_proposed":
      return `plan ${ev.plan_id} proposed: ${plural(list(ev.objectives).length, "objective")}`;
    case "plan_revised":
      return `plan ${ev.plan_id} revises ${ev.revises}: ${plural(list(ev.objectives).length, "objective")}`;
    case "scope_validated":
      if (ev.valid) return `plan ${ev.plan_id} validated: no two objectives of a wave overlap`;
      return (
        `plan ${ev.plan_id} invalid: ${plural(list(ev.conflicts).length, "conflict")}` +
        (ev.reason ? ` (${ev.reason})` : "") +
        (ev.resolving ? "; a revision follows" : "")
      );
    case "plan_awaiting_approval":
      return `plan ${ev.plan_id} awaits the owner's approval`;
    case "plan_approved":
      return `plan ${ev.plan_id} approved by ${ev.by}` + (ev.reason ? `: ${ev.reason}` : "");
    case "plan_rejected":
      return `plan ${ev.plan_id} rejected by ${ev.by}` + (ev.reason ? `: ${ev.reason}` : "");
    case "cancel_requested":
      return `cancel requested by ${ev.by}` + (ev.reason ? `: ${ev.reason}` : "");
    case "wave_started":
      return `wave ${ev.wave} started: ${list(ev.objective_ids).join(", ")}`;
    case "wave_completed":
      return `wave ${ev.wave} completed`;
    case "wave_merged":
      return `wave ${ev.wave} merged into ${ev.branch}` + (ev.commit ? ` at ${ev.commit.slice(0, 10)}` : "");
    case "merge_conflicted":
      return `merging ${ev.objective_id} (wave ${ev.wave}) conflicted: ${list(ev.paths).join(", ")}`;
    case "objective_assigned":
      return `${ev.objective_id} → ${ev.worker_id} (attempt ${ev.attempt})`;
    case "objective_started":
      return `${ev.objective_id} started on ${ev.worker_id} (attempt ${ev.attempt})`;
    case "objective_completed":
      return `${ev.objective_id} completed by ${ev.worker_id}: ${plural(list(ev.files_modified).length, "file")} changed`;
    case "objective_failed":
      return `${ev.objective_id} failed on ${ev.worker_id}` + (ev.reason ? `: ${ev.reason}` : "");
    case "scope_violated":
      return `${ev.objective_id} changed ${ev.rule === "inside_forbid" ? "forbidden" : "out-of-scope"} paths: ${list(ev.paths).join(", ")}`;
    case "worker_error":
      return `${ev.worker_id}: ${ev.error}`;
    case "report_written":
      return `${ev.kind} report: ${ev.path}`;
    case "session_completed":
      return `session completed` + (ev.summary ? `: ${ev.summary}` : "");
    case "session_failed":
      return `session failed: ${ev.reason}`;
    case "session_cancelled":
      return `session cancelled` + (ev.reason ? `: ${ev.reason}` : "");
    case "actor_exited":
      return `actor ${ev.actor} exited` + (ev.reason ? `: ${ev.reason}` : "");
    default:
      return ev.type;
  }
}

// --- every session --------------------------------------------------------------------

/** Every session seen, folded: projections.Sessions. */
export class Sessions {
  constructor({ feedLimit = FEED_LIMIT } = {}) {
    this.feedLimit = feedLimit;
    this.views = new Map();
  }

  /** The view of a session, created empty when unknown. */
  view(sessionId) {
    let v = this.views.get(sessionId);
    if (!v) {
      v = new SessionView(sessionId, { feedLimit: this.feedLimit });
      this.views.set(sessionId, v);
    }
    return v;
  }

  /** Fold one event; return the view it changed, or null (no session, duplicate). */
  apply(raw) {
    if (!raw || !raw.session_id) return null;
    const v = this.view(raw.session_id);
    return apply(v, raw) ? v : null;
  }
}

/** Fold a session's events (already filtered to it, seq order) into a new view. */
export function foldSession(records, sessionId, opts = {}) {
  const view = new SessionView(sessionId, opts);
  for (const r of records) apply(view, r);
  return view;
}

// --- JSON (projections.view_to_json) ----------------------------------------------------

function workerJSON(w, feedLimit, browser) {
  const feed = w.feed.slice(Math.max(0, w.feed.length - feedLimit)).map((a) => {
    const { exit_code, ...rest } = a;
    return browser ? { ...rest, exit_code } : rest;
  });
  const out = {
    worker_id: w.worker_id,
    status: w.status,
    objective_id: w.objective_id,
    pid: w.pid,
    tasks_completed: w.tasks_completed,
    tasks_failed: w.tasks_failed,
    tools_used: Object.fromEntries(w.tools_used),
    files_modified: [...w.files_modified],
    activities: w.activities,
    errors: w.errors,
    feed,
    cpu_percent: w.cpu_percent,
    rss_bytes: w.rss_bytes,
    uptime_seconds: w.uptime_seconds,
    input_tokens: w.input_tokens,
    output_tokens: w.output_tokens,
    cost_usd: w.cost_usd,
  };
  if (browser) {
    out.last_result = w.last_result;
    out.last_error = w.last_error;
  }
  return out;
}

/**
 * The view in the JSON shape of `view_to_json` (`GET /api/sessions/{id}`): objectives,
 * waves and workers as lists, feeds of ACTIVITY_FEED entries, plus duration_s.
 * With `browser: true` the browser-only fields are kept and feeds are not trimmed.
 */
export function viewToJSON(view, { browser = false, now = 0 } = {}) {
  const feedLimit = browser ? view.feedLimit : ACTIVITY_FEED;
  const out = {
    session_id: view.session_id,
    status: view.status,
    request: view.request,
    repo: view.repo,
    base_ref: view.base_ref,
    plan_file: view.plan_file,
    auto_approve: view.auto_approve,
    resolve_conflicts: view.resolve_conflicts,
    team: [...view.team],
    submitted_at: view.submitted_at,
    ended_at: view.ended_at,
    analysis: clone(view.analysis),
    plan_id: view.plan_id,
    plan_revision: view.plan_revision,
    revised: clone(view.revised),
    objectives: [...view.objectives.values()].map((o) => clone(o)),
    contracts: clone(view.contracts),
    valid: view.valid,
    conflicts: clone(view.conflicts),
    resolving: view.resolving,
    invalid_reason: view.invalid_reason,
    approved_by: view.approved_by,
    awaiting_since: view.awaiting_since,
    waves: [...view.waves.values()].map((w) => clone(w)),
    workers: [...view.workers.values()].map((w) => workerJSON(w, feedLimit, browser)),
    merge_conflict: clone(view.merge_conflict),
    cancel_requested: view.cancel_requested,
    branch: view.branch,
    commit_message: view.commit_message,
    summary: view.summary,
    reason: view.reason,
    reports: Object.fromEntries(view.reports),
    events: view.events,
    last_seq: view.last_seq,
    last_ts: view.last_ts,
    duration_s: Math.round(view.durationS(now) * 1000) / 1000,
  };
  if (browser) out.timeline = clone(view.timeline);
  return out;
}

/** One line of the sessions list (projections.session_row / `GET /api/sessions`). */
export function sessionRow(view, now = 0) {
  return {
    session_id: view.session_id,
    status: view.status,
    request: view.request,
    repo: view.repo,
    submitted_at: view.submitted_at,
    ended_at: view.ended_at,
    duration_s: Math.round(view.durationS(now) * 1000) / 1000,
    objectives: view.objectives.size,
    objectives_completed: view.objectivesCompleted(),
    branch: view.branch,
    reason: view.reason,
  };
}
