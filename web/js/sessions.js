// The sessions list (GET /api/sessions), the submit form (POST /api/sessions) and the
// home page's team (GET /api/workers).

import { el, setAttr, setText, show, clear, debounce } from "./dom.js";
import { fmtAgo, fmtDuration, statusLabel } from "./format.js";
import { ENDED } from "./state.js";

const MAX_ROWS = 300;

export class SessionsPanel {
  constructor(root, api) {
    this.api = api;
    this.root = root;
    this.list = el("ul", { class: "session-list", testid: "session-list" });
    this.empty = el("p", { class: "muted", testid: "sessions-empty", text: "No sessions yet: submit a request above." });
    this.error = el("p", { class: "alert error", testid: "sessions-error", attrs: { role: "alert" } });
    this.count = el("span", { class: "muted", testid: "sessions-count" });
    root.append(el("h3", { class: "panel-title" }, "Sessions ", this.count), this.error, this.empty, this.list);
    show(this.empty, false);
    show(this.error, false);
    this.rows = new Map(); // id -> {node, parts, row}
    this.selected = null;
    this.refreshSoon = debounce(() => this.refresh(), 250);
    this.inflight = null;
    // Durations of running sessions tick.
    this.ticker = setInterval(() => this.tick(), 1000);
  }

  async refresh() {
    if (this.inflight) {
      this.again = true;
      return this.inflight;
    }
    this.inflight = (async () => {
      const res = await this.api.sessions();
      if (res.ok && Array.isArray(res.data)) {
        show(this.error, false);
        this.render(res.data);
      } else {
        setText(this.error, `Cannot load the sessions: ${res.error || "unexpected answer"}`);
        show(this.error, true);
      }
    })();
    try {
      await this.inflight;
    } finally {
      this.inflight = null;
    }
    if (this.again) {
      this.again = false;
      return this.refresh();
    }
  }

  render(rows) {
    const sorted = [...rows]
      .filter((r) => r && typeof r.session_id === "string")
      .sort((a, b) => (b.submitted_at || 0) - (a.submitted_at || 0))
      .slice(0, MAX_ROWS);
    const seen = new Set();
    sorted.forEach((row, i) => {
      seen.add(row.session_id);
      let entry = this.rows.get(row.session_id);
      if (!entry) {
        entry = makeRow(row.session_id);
        this.rows.set(row.session_id, entry);
      }
      entry.row = row;
      updateRow(entry, row, this.selected);
      if (this.list.children[i] !== entry.node) this.list.insertBefore(entry.node, this.list.children[i] || null);
    });
    for (const [id, entry] of this.rows) {
      if (!seen.has(id)) {
        entry.node.remove();
        this.rows.delete(id);
      }
    }
    show(this.empty, sorted.length === 0);
    const live = sorted.filter((r) => !ENDED.has(r.status)).length;
    setText(this.count, sorted.length ? `${sorted.length}${live ? `, ${live} live` : ""}` : "");
  }

  setSelected(id) {
    this.selected = id || null;
    for (const [sid, entry] of this.rows) setAttr(entry.link, "aria-current", sid === this.selected ? "page" : null);
  }

  tick() {
    const now = Date.now() / 1000;
    for (const entry of this.rows.values()) {
      const r = entry.row;
      if (r && !ENDED.has(r.status) && r.submitted_at) setText(entry.parts.duration, fmtDuration(now - r.submitted_at));
    }
  }
}

function makeRow(id) {
  const parts = {
    status: el("span", { class: "badge", testid: "row-status" }),
    request: el("span", { class: "row-request", testid: "row-request" }),
    progress: el("span", { testid: "row-progress" }),
    duration: el("span", { testid: "row-duration" }),
    when: el("span", { class: "muted", testid: "row-when" }),
    reason: el("span", { class: "row-reason", testid: "row-reason" }),
  };
  const link = el(
    "a",
    { class: "session-row-link", attrs: { href: `#/session/${encodeURIComponent(id)}` } },
    el("div", { class: "row-top" }, parts.status, parts.request),
    el("div", { class: "row-meta muted" }, parts.progress, parts.duration, parts.when),
    parts.reason,
  );
  const node = el("li", { class: "session-row", testid: `session-row-${id}`, data: { "session-id": id } }, link);
  return { node, link, parts, row: null };
}

function updateRow(entry, r, selected) {
  const { node, link, parts } = entry;
  setAttr(node, "data-status", r.status);
  setAttr(parts.status, "data-status", r.status);
  setText(parts.status, statusLabel(r.status));
  setText(parts.request, r.request || r.session_id);
  setAttr(link, "title", `${r.request || ""}\n${r.repo || ""}\n${r.session_id}`);
  const total = Number(r.objectives) || 0;
  setText(parts.progress, total ? `${Number(r.objectives_completed) || 0}/${total} objectives` : "no plan yet");
  const live = !ENDED.has(r.status);
  const duration = live && r.submitted_at ? Date.now() / 1000 - r.submitted_at : r.duration_s;
  setText(parts.duration, fmtDuration(duration || 0));
  setText(parts.when, fmtAgo(r.submitted_at));
  setText(parts.reason, r.status === "failed" || r.status === "cancelled" ? r.reason || "" : "");
  show(parts.reason, !!parts.reason.textContent);
  setAttr(link, "aria-current", r.session_id === selected ? "page" : null);
}

/** The "new session" form: request, repository, base, approve-without-asking, workers. */
export class SubmitForm {
  constructor(form, api, { onSubmitted }) {
    this.form = form;
    this.api = api;
    this.onSubmitted = onSubmitted;
    this.error = form.querySelector('[data-testid="submit-error"]');
    this.button = form.querySelector('[data-testid="submit-button"]');
    this.workersBox = form.querySelector('[data-testid="submit-workers"]');
    const repo = form.elements.namedItem("repo");
    try {
      if (repo && !repo.value) repo.value = localStorage.getItem("ap.repo") || "";
    } catch {
      /* storage disabled */
    }
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
  }

  setWorkers(workers) {
    if (!this.workersBox) return;
    const checked = new Set(this.selectedWorkers());
    clear(this.workersBox);
    if (!workers.length) {
      this.workersBox.append(el("span", { class: "muted", text: "no workers in the team" }));
      return;
    }
    for (const w of workers) {
      const box = el("input", { attrs: { type: "checkbox", name: "workers", value: w.worker_id, checked: checked.has(w.worker_id) }, testid: `submit-worker-${w.worker_id}` });
      this.workersBox.append(el("label", { class: "check", title: (w.capabilities || []).join(", ") }, box, ` ${w.worker_id}`, el("span", { class: "muted", text: ` ${w.agent || ""}` })));
    }
  }

  selectedWorkers() {
    return [...this.form.querySelectorAll('input[name="workers"]:checked')].map((x) => x.value);
  }

  async submit() {
    const f = this.form.elements;
    const request = f.namedItem("request").value.trim();
    const repo = f.namedItem("repo").value.trim();
    const base = (f.namedItem("base") && f.namedItem("base").value.trim()) || "";
    const approve = !!(f.namedItem("approve") && f.namedItem("approve").checked);
    setText(this.error, "");
    show(this.error, false);
    const body = { request, repo, approve };
    if (base) body.base = base;
    const workers = this.selectedWorkers();
    if (workers.length) body.workers = workers;
    setAttr(this.button, "disabled", true);
    setText(this.button, "Submitting…");
    const res = await this.api.submit(body);
    setAttr(this.button, "disabled", null);
    setText(this.button, "Submit");
    if (res.ok && res.data && res.data.session_id) {
      f.namedItem("request").value = "";
      try {
        localStorage.setItem("ap.repo", repo);
      } catch {
        /* storage disabled */
      }
      this.onSubmitted(res.data.session_id, res.data);
    } else {
      setText(this.error, res.error || "the server did not return a session id");
      show(this.error, true);
    }
  }
}

/** The home page (#/): the team and what to do next. */
export class HomePage {
  constructor(root, api, { onWorkers } = {}) {
    this.api = api;
    this.onWorkers = onWorkers || (() => {});
    clear(root);
    this.team = el("ul", { class: "team-list", testid: "team-list" });
    this.teamError = el("p", { class: "alert error", testid: "team-error" });
    this.health = el("p", { class: "muted", testid: "health" });
    show(this.teamError, false);
    root.append(
      el(
        "section",
        { class: "home", testid: "home-page" },
        el(
          "section",
          { class: "panel" },
          el("h3", { class: "panel-title", text: "Overview" }),
          el("p", { text: "Pick a session on the left to follow its plan, its workers and their activity live, or submit a new request." }),
          el("p", { class: "muted", text: "Every view is folded from the session's events, so a finished session can be replayed step by step." }),
          this.health,
        ),
        el("section", { class: "panel" }, el("h3", { class: "panel-title", text: "Team" }), this.teamError, this.team),
      ),
    );
    this.refreshSoon = debounce(() => this.refresh(), 500);
    this.refresh();
    this.loadHealth();
  }

  destroy() {}

  async loadHealth() {
    const res = await this.api.health();
    if (res.ok && res.data && typeof res.data === "object") {
      const parts = [];
      for (const key of ["status", "last_seq", "version", "clients"]) {
        if (res.data[key] != null && typeof res.data[key] !== "object") parts.push(`${key.replace("_", " ")} ${res.data[key]}`);
      }
      setText(this.health, parts.length ? `mesh: ${parts.join(" · ")}` : "mesh: healthy");
    } else {
      setText(this.health, `mesh: ${res.error || "unknown"}`);
    }
  }

  async refresh() {
    const res = await this.api.workers();
    if (!res.ok || !Array.isArray(res.data)) {
      setText(this.teamError, `Cannot load the team: ${res.error || "unexpected answer"}`);
      show(this.teamError, true);
      return;
    }
    show(this.teamError, false);
    this.onWorkers(res.data);
    clear(this.team);
    if (!res.data.length) this.team.append(el("li", { class: "muted", text: "The mesh has no workers; start it with a team (ap up --team team.toml)." }));
    for (const w of res.data) {
      const status = w.status || "idle";
      this.team.append(
        el(
          "li",
          { class: "team-worker", testid: `team-worker-${w.worker_id}`, data: { status } },
          el("span", { class: "light", data: { light: status === "busy" ? "busy" : "idle" } }),
          el("b", { text: w.worker_id }),
          el("span", { class: "muted", text: ` ${w.agent || ""}` }),
          (w.capabilities || []).length ? el("span", { class: "chips inline" }, w.capabilities.map((c) => el("span", { class: "chip", text: c }))) : null,
          el("span", { class: "team-status", text: status }),
          w.session_id
            ? el("a", { attrs: { href: `#/session/${encodeURIComponent(w.session_id)}` }, text: w.objective_id ? `${w.objective_id} ↗` : "session ↗" })
            : null,
        ),
      );
    }
  }
}
