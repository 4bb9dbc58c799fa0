// Checks of the dashboard's fold (web/js/state.js) and replay (web/js/replay.js), no browser.
//
//   node web/tests/state_check.mjs        exits 0 when every check passes, 1 otherwise
//
// 1. a small hand-written session, checked field by field;
// 2. parity with the Python projection: fixtures/*.json hold records and the views
//    ap_actors.projections folded from them (make_fixture.py writes them); state.js must
//    fold the same records into the same view_to_json;
// 3. duplicates (a reconnect's overlap) are not folded twice; the browser feed keeps 200;
// 4. replay: paging, seeking forward and back, playing at every speed, and the end state
//    equal to the live fold.

import { readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import {
  ACTIVITY_FEED,
  FEED_LIMIT,
  Sessions,
  SessionView,
  apply,
  foldSession,
  sessionRow,
  viewToJSON,
} from "../js/state.js";
import { Replay, fetchSessionEvents } from "../js/replay.js";

const HERE = dirname(fileURLToPath(import.meta.url));
let passed = 0;
let failed = 0;

function check(name, fn) {
  try {
    fn();
    passed += 1;
  } catch (err) {
    failed += 1;
    console.error(`FAIL ${name}\n  ${err && err.stack ? err.stack.split("\n").slice(0, 3).join("\n  ") : err}`);
  }
}

async function checkAsync(name, fn) {
  try {
    await fn();
    passed += 1;
  } catch (err) {
    failed += 1;
    console.error(`FAIL ${name}\n  ${err && err.stack ? err.stack.split("\n").slice(0, 3).join("\n  ") : err}`);
  }
}

function eq(actual, expected, what = "") {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

function ok(cond, what) {
  if (!cond) throw new Error(what);
}

/** First difference between two JSON values (key order ignored), or null. */
function diff(a, b, path = "$") {
  if (typeof a === "number" && typeof b === "number") {
    const tol = path.endsWith(".duration_s") ? 1e-3 : 0;
    return Math.abs(a - b) <= tol ? null : `${path}: ${a} != ${b}`;
  }
  if (a === null || b === null || typeof a !== "object" || typeof b !== "object") {
    return a === b ? null : `${path}: ${JSON.stringify(a)} != ${JSON.stringify(b)}`;
  }
  if (Array.isArray(a) !== Array.isArray(b)) return `${path}: array vs object`;
  if (Array.isArray(a)) {
    if (a.length !== b.length) return `${path}: length ${a.length} != ${b.length}`;
    for (let i = 0; i < a.length; i += 1) {
      const d = diff(a[i], b[i], `${path}[${i}]`);
      if (d) return d;
    }
    return null;
  }
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of keys) {
    if (!(k in a)) return `${path}.${k}: missing in the JS fold`;
    if (!(k in b)) return `${path}.${k}: not in the Python view`;
    const d = diff(a[k], b[k], `${path}.${k}`);
    if (d) return d;
  }
  return null;
}

// --- 1. a small hand-written session ----------------------------------------------------

const S = "s1";
let seq = 0;
const e = (type, fields = {}) => ({
  seq: ++seq,
  appended_at: 1000 + seq,
  type,
  id: `e${seq}`,
  session_id: S,
  ts: 1000 + seq,
  source: "test",
  ...fields,
});
const obj = (id, wave, more = {}) => ({ id, title: `Do ${id}`, wave, scope_touch: [`${id}/`], ...more });
const small = [
  e("request_submitted", { request: "Add auth", repo: "/repo" }),
  e("analysis_completed", { task_type: "feature", coordination_points: ["src/__init__.py"] }),
  e("plan_proposed", { plan_id: "p1", objectives: [obj("a", 1), obj("b", 1), obj("c", 2, { depends_on: ["a", "b"] })] }),
  e("scope_validated", {
    plan_id: "p1",
    valid: false,
    conflicts: [{ wave: 1, objective_a: "a", objective_b: "b", pattern_a: "a/", pattern_b: "**", witness: "a/x" }],
  }),
  e("plan_awaiting_approval", { plan_id: "p1" }),
  e("plan_approved", { plan_id: "p1", by: "owner" }),
  e("wave_started", { wave: 1, objective_ids: ["a", "b"] }),
  e("objective_assigned", { objective_id: "a", worker_id: "w1", attempt: 1 }),
  e("objective_assigned", { objective_id: "b", worker_id: "w2", attempt: 1 }),
  e("objective_started", { objective_id: "a", worker_id: "w1", attempt: 1 }),
  e("worker_activity", { worker_id: "w1", objective_id: "a", activity_type: "tool_use", tool_name: "edit", description: "Editing a.py", file_path: "a/a.py" }),
  e("worker_activity", { worker_id: "w1", objective_id: "a", activity_type: "command", tool_name: "shell", description: "pytest", exit_code: 0 }),
  e("worker_activity", { worker_id: "w2", objective_id: "b", activity_type: "reasoning", description: "thinking" }),
  e("worker_error", { worker_id: "w2", error: "boom", objective_id: "b" }),
  e("objective_failed", { objective_id: "b", worker_id: "w2", reason: "exit 1", exit_code: 1 }),
  e("objective_completed", { objective_id: "a", worker_id: "w1", files_modified: ["a/a.py", "a/b.py"], cost_usd: 0.5 }),
  e("worker_metrics", { worker_id: "w1", uptime_seconds: 5, input_tokens: 100, output_tokens: 7, cost_usd: 0.5 }),
];

check("the hand-written session folds as projections.py does", () => {
  const v = foldSession(small, S);
  eq(v.status, "running", "status");
  eq(v.request, "Add auth", "request");
  eq(v.analysis.task_type, "feature", "task type");
  eq(v.analysis.type, "analysis_completed", "analysis keeps its tag");
  eq([...v.waves.keys()], [1, 2], "waves");
  eq(v.waves.get(1).objective_ids, ["a", "b"], "wave 1");
  eq(v.waves.get(1).status, "running", "wave 1 status");
  eq(v.valid, false, "valid");
  eq(v.conflictsOf("a").map((c) => c.witness), ["a/x"], "conflict witness");
  eq(v.approved_by, "owner", "approved by");
  const a = v.objectives.get("a");
  eq([a.status, a.worker_id, a.attempt, a.files_modified], ["completed", "w1", 1, ["a/a.py", "a/b.py"]], "a");
  const b = v.objectives.get("b");
  eq([b.status, b.failures, b.reason, b.exit_code], ["failed", 1, "exit 1", 1], "b");
  eq(v.objectives.get("c").status, "pending", "c");
  eq(v.objectives.get("c").objective.depends_on, ["a", "b"], "c depends on");
  const w1 = v.workers.get("w1");
  eq([w1.status, w1.tasks_completed, w1.tasks_failed, w1.activities], ["idle", 1, 0, 2], "w1 counters");
  eq(Object.fromEntries(w1.tools_used), { edit: 1, shell: 1 }, "w1 tools");
  eq(w1.files_modified, ["a/a.py", "a/b.py"], "w1 files");
  eq(w1.feed.map((f) => f.seq), [11, 12], "w1 feed seqs");
  eq(w1.feed[1].exit_code, 0, "the feed keeps exit codes");
  eq([w1.input_tokens, w1.output_tokens, w1.cost_usd, w1.uptime_seconds], [100, 7, 0.5, 5], "w1 usage");
  const w2 = v.workers.get("w2");
  eq([w2.status, w2.tasks_failed, w2.errors, w2.last_result, w2.last_error.error], ["idle", 1, 1, "failed", "boom"], "w2");
  eq([v.events, v.last_seq, v.last_ts], [small.length, small.length, 1000 + small.length], "counters");
  eq(sessionRow(v).objectives_completed, 1, "row: objectives completed");
  ok(v.timeline.some((t) => t.type === "objective_failed" && t.level === "error"), "timeline has the failure");
  ok(!v.timeline.some((t) => t.type === "worker_activity"), "timeline has no activities");
});

check("status goes analysing → … → running and an ended session stays ended", () => {
  const v = new SessionView(S);
  const seen = small.slice(0, 6).map((x) => (apply(v, x), v.status));
  eq(seen, ["analysing", "planning", "validating", "validating", "awaiting_approval", "running"], "statuses");
  apply(v, e("session_cancelled", { reason: "stop" }));
  apply(v, e("session_completed", { summary: "late" }));
  eq([v.status, v.reason, v.summary], ["cancelled", "stop", ""], "ended");
});

check("an event seen again (reconnect overlap) is not folded twice", () => {
  const v = foldSession(small, S);
  const before = JSON.stringify(viewToJSON(v, { browser: true }));
  for (const x of small) ok(!apply(v, x), `seq ${x.seq} folded twice`);
  eq(JSON.stringify(viewToJSON(v, { browser: true })), before, "view after duplicates");
  const store = new Sessions();
  ok(store.apply(small[0]) !== null, "first time");
  ok(store.apply(small[0]) === null, "second time");
  ok(store.apply({ seq: 99, type: "actor_started", session_id: "" }) === null, "mesh events have no session");
});

check("missing fields take their defaults", () => {
  const v = new SessionView(S);
  apply(v, { seq: 1, type: "request_submitted", session_id: S, request: "x", repo: "/r" });
  apply(v, { seq: 2, type: "plan_proposed", session_id: S, plan_id: "p", objectives: [{ id: "o", title: "t" }] });
  apply(v, { seq: 3, type: "worker_activity", session_id: S, worker_id: "w" });
  const j = viewToJSON(v);
  eq(j.base_ref, "HEAD", "base_ref");
  eq(j.objectives[0].objective, { id: "o", title: "t", description: "", wave: 1, scope_touch: [], scope_forbid: [], worker: "", depends_on: [], command: null, capabilities: [] }, "objective");
  eq(j.workers[0].feed[0].activity_type, "message", "activity type");
});

check("the browser keeps 200 activities per worker, view_to_json 50", () => {
  const v = new SessionView(S);
  for (let i = 1; i <= 450; i += 1) {
    apply(v, { seq: i, type: "worker_activity", session_id: S, worker_id: "w", description: `${i}` });
  }
  const w = v.workers.get("w");
  eq([w.activities, w.feed.length, w.feed[0].seq, w.feed[FEED_LIMIT - 1].seq], [450, FEED_LIMIT, 251, 450], "browser feed");
  const j = viewToJSON(v).workers[0].feed;
  eq([j.length, j[0].seq], [ACTIVITY_FEED, 401], "json feed");
});

// --- 2. parity with ap_actors.projections -----------------------------------------------

const fixtures = readdirSync(join(HERE, "fixtures")).filter((f) => f.endsWith(".json"));
for (const name of fixtures) {
  const { records, views } = JSON.parse(readFileSync(join(HERE, "fixtures", name), "utf8"));
  check(`${name}: every session folds to the Python view`, () => {
    const store = new Sessions();
    for (const r of records) store.apply(r);
    eq([...store.views.keys()].sort(), Object.keys(views).sort(), "sessions");
    for (const [sid, expected] of Object.entries(views)) {
      const d = diff(viewToJSON(store.views.get(sid)), expected);
      if (d) throw new Error(`${sid}: ${d}`);
    }
  });
}

// --- 4. replay --------------------------------------------------------------------------

const { records: synth } = JSON.parse(readFileSync(join(HERE, "fixtures", "synthetic.json"), "utf8"));
const sid = synth[0].session_id;
const mine = synth.filter((r) => r.session_id === sid);
const live = foldSession(mine, sid);
const liveJSON = JSON.stringify(viewToJSON(live, { browser: true }));

await checkAsync("fetchSessionEvents pages with next until last_seq, each event once", async () => {
  const calls = [];
  const getPage = async (since, limit) => {
    calls.push(since);
    // Overlapping pages (a server that repeats the boundary) must not duplicate.
    const events = mine.filter((r) => r.seq >= since).slice(0, limit);
    return { events, next: events.length ? events[events.length - 1].seq : since, last_seq: mine[mine.length - 1].seq };
  };
  const got = await fetchSessionEvents(getPage, { limit: 7 });
  eq(got.map((r) => r.seq), mine.map((r) => r.seq), "seqs");
  ok(calls.length > 3 && calls.length < 20, `pages: ${calls.length}`);
  const none = await fetchSessionEvents(async () => ({ events: [], next: 0, last_seq: 0 }));
  eq(none, [], "an empty session");
});

check("replay: the end state equals the live state; seeking back and forth agrees", () => {
  const r = new Replay(sid, mine);
  eq(r.seq, mine[0].seq - 1, "starts before the first event");
  r.seek(r.lastSeq);
  eq(JSON.stringify(viewToJSON(r.view, { browser: true })), liveJSON, "end state");
  const mid = mine[Math.floor(mine.length / 2)].seq;
  r.seek(mid);
  const fresh = foldSession(mine.filter((x) => x.seq <= mid), sid);
  eq(JSON.stringify(viewToJSON(r.view, { browser: true })), JSON.stringify(viewToJSON(fresh, { browser: true })), "back to the middle");
  eq(r.view.last_seq, mid, "last seq");
  r.seek(mid + 1000000);
  eq(r.seq, r.lastSeq, "clamped to the last seq");
  eq(JSON.stringify(viewToJSON(r.view, { browser: true })), liveJSON, "forward again");
});

for (const speed of ["1", "10", "100", "max"]) {
  check(`replay: playing at ${speed}× reaches the live state and stops`, () => {
    const r = new Replay(sid, mine);
    r.setSpeed(speed);
    r.play();
    let ticks = 0;
    let lastSeen = r.seq;
    while (r.playing && ticks < 100000) {
      r.tick(16);
      ok(r.seq >= lastSeen, "never goes back");
      lastSeen = r.seq;
      ticks += 1;
    }
    ok(!r.playing, "stopped at the end");
    eq(JSON.stringify(viewToJSON(r.view, { browser: true })), liveJSON, "end state");
    if (speed === "max") ok(ticks === 1, `max folds ${mine.length} events in one tick`);
  });
}

check("replay: 1× plays the log's own pace (gaps over 2 s shortened)", () => {
  const evs = [1, 2, 3].map((i) => ({ seq: i, appended_at: [0, 0.5, 100][i - 1] + 1e6, type: "cancel_requested", session_id: "x" }));
  const r = new Replay("x", evs);
  r.setSpeed("1");
  r.play();
  r.tick(100);
  eq(r.seq, 1, "the first event at once");
  r.tick(300);
  eq(r.seq, 1, "0.4 s later: not yet the second");
  r.tick(200);
  eq(r.seq, 2, "0.6 s: the second");
  r.tick(1500);
  eq(r.seq, 2, "2.1 s: the 99.5 s gap plays as 2 s");
  r.tick(600);
  eq([r.seq, r.playing], [3, false], "then the third, and stop");
});

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
