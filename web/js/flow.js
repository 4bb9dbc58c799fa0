// The plan as a flow: one column per wave, one card per objective, an arrow from each
// objective to those that depend on it (depends_on), a dotted arc between two
// objectives of a wave whose scopes the validator found overlapping.
//
// Cards are rebuilt only when the plan changes (a new plan or revision); otherwise they
// are updated in place. Arrows are laid out after the cards, on the same frame, and again
// when the canvas is resized.

import { el, setAttr, setText, show, svg, clear } from "./dom.js";
import { fmtDuration, shortSha, statusLabel } from "./format.js";

const MARKERS = ["done", "wait", "bad"];
const SCOPE_SHOWN = 6; // patterns shown per scope before "+N"

export class FlowView {
  constructor(root) {
    this.root = root;
    this.empty = el("p", { class: "muted", testid: "flow-empty", text: "No plan yet." });
    this.links = svg("svg", { class: "flow-links", "data-testid": "flow-links", "aria-hidden": "true" });
    const defs = svg("defs");
    for (const m of MARKERS) {
      const marker = svg("marker", {
        id: `flow-arrow-${m}`,
        viewBox: "0 0 10 10",
        refX: 9,
        refY: 5,
        markerWidth: 7,
        markerHeight: 7,
        orient: "auto-start-reverse",
      });
      marker.append(svg("path", { d: "M0,0 L10,5 L0,10 z", class: `arrow-head ${m}` }));
      defs.append(marker);
    }
    this.links.append(defs);
    this.edges = svg("g");
    this.links.append(this.edges);
    this.columns = el("div", { class: "flow-columns", testid: "flow-columns" });
    this.canvas = el("div", { class: "flow-canvas" }, this.links, this.columns);
    this.scroller = el("div", { class: "flow-scroll" }, this.canvas);
    root.append(this.empty, this.scroller);
    this.key = "";
    this.cards = new Map(); // objective id -> {node, parts}
    this.waveCols = new Map(); // wave number -> {node, parts}
    this.view = null;
    this.layoutPending = false;
    if (typeof ResizeObserver !== "undefined") {
      this.resize = new ResizeObserver(() => this.requestLayout());
      this.resize.observe(this.canvas);
    }
  }

  destroy() {
    if (this.resize) this.resize.disconnect();
  }

  requestLayout() {
    if (this.layoutPending) return;
    this.layoutPending = true;
    requestAnimationFrame(() => {
      this.layoutPending = false;
      if (this.view) this.layoutLinks(this.view);
    });
  }

  /** Render `view`'s plan (cards updated in place unless the plan changed). */
  render(view) {
    this.view = view;
    const key = [
      view.plan_id,
      view.plan_version,
      [...view.waves.keys()].join(","),
      [...view.objectives.keys()].join(","),
    ].join("|");
    const hasPlan = view.objectives.size > 0 || view.waves.size > 0;
    show(this.empty, !hasPlan);
    show(this.scroller, hasPlan);
    if (key !== this.key) {
      this.key = key;
      this.build(view);
    }
    for (const [number, wv] of view.waves) this.updateWave(number, wv, view);
    for (const [id, ov] of view.objectives) this.updateCard(id, ov, view);
    this.layoutLinks(view);
  }

  build(view) {
    clear(this.columns);
    this.cards.clear();
    this.waveCols.clear();
    for (const [number] of view.waves) {
      const parts = {
        status: el("span", { class: "badge", testid: "wave-status" }),
        progress: el("span", { class: "muted", testid: "wave-progress" }),
        commit: el("code", { class: "muted", testid: "wave-commit" }),
        body: el("div", { class: "wave-body" }),
      };
      const node = el(
        "section",
        { class: "wave-col", testid: `wave-${number}`, data: { wave: number } },
        el("header", { class: "wave-head" }, el("h4", { text: `Wave ${number}` }), parts.status, parts.progress, parts.commit),
        parts.body,
      );
      this.waveCols.set(number, { node, parts });
      this.columns.append(node);
    }
    for (const [id, ov] of view.objectives) {
      const col = this.waveCols.get(ov.objective.wave);
      if (!col) continue;
      const card = this.makeCard(id, ov);
      this.cards.set(id, card);
      col.parts.body.append(card.node);
    }
  }

  makeCard(id, ov) {
    const o = ov.objective;
    const parts = {
      status: el("span", { class: "badge", testid: "obj-status" }),
      worker: el("span", { testid: "obj-worker" }),
      attempt: el("span", { testid: "obj-attempt" }),
      timing: el("span", { class: "muted", testid: "obj-timing" }),
      files: el("span", { class: "muted", testid: "obj-files" }),
      reason: el("p", { class: "obj-reason", testid: "obj-reason" }),
      conflicts: el("ul", { class: "obj-conflicts", testid: "obj-conflicts" }),
      violations: el("p", { class: "obj-violations", testid: "obj-violations" }),
      deps: el("p", { class: "obj-deps muted", testid: "obj-deps" }),
    };
    const chips = (patterns, cls, testid) => {
      // Every pattern is in the DOM; past SCOPE_SHOWN they are hidden behind "+N".
      const list = el(
        "ul",
        { class: `chips ${cls}`, testid },
        patterns.map((p, i) => {
          const li = el("li", { class: "chip", text: p, title: p });
          if (i >= SCOPE_SHOWN) li.hidden = true;
          return li;
        }),
      );
      if (patterns.length > SCOPE_SHOWN) {
        const more = el("button", {
          class: "chip more",
          testid: "scope-more",
          text: `+${patterns.length - SCOPE_SHOWN}`,
          title: "show every pattern",
          attrs: { type: "button" },
        });
        more.addEventListener("click", () => {
          for (const li of list.children) li.hidden = false;
          more.remove();
          this.requestLayout();
        });
        list.append(more);
      }
      return list;
    };
    const node = el(
      "article",
      { class: "obj-card", testid: `objective-card-${id}`, data: { "objective-id": id, wave: o.wave } },
      el("header", { class: "obj-head" }, el("code", { class: "obj-id", testid: "obj-id", text: id }), parts.status),
      el("h5", { class: "obj-title", testid: "obj-title", text: o.title || "(untitled)", title: o.description || o.title }),
      el("div", { class: "obj-meta" }, parts.worker, parts.attempt, parts.timing, parts.files),
      o.scope_touch.length ? el("div", { class: "scope" }, el("span", { class: "scope-label", text: "touch" }), chips(o.scope_touch, "touch", "scope-touch")) : null,
      o.scope_forbid.length ? el("div", { class: "scope" }, el("span", { class: "scope-label", text: "forbid" }), chips(o.scope_forbid, "forbid", "scope-forbid")) : null,
      parts.deps,
      parts.conflicts,
      parts.violations,
      parts.reason,
    );
    return { node, parts };
  }

  updateWave(number, wv, view) {
    const col = this.waveCols.get(number);
    if (!col) return;
    setAttr(col.node, "data-status", wv.status);
    setAttr(col.parts.status, "data-status", wv.status);
    setText(col.parts.status, wv.status);
    const ids = wv.objective_ids;
    const done = ids.filter((id) => view.objectives.get(id)?.status === "completed").length;
    setText(col.parts.progress, ids.length ? `${done}/${ids.length}` : "");
    setText(col.parts.commit, shortSha(wv.commit));
    setAttr(col.parts.commit, "title", wv.commit || null);
  }

  updateCard(id, ov, view) {
    const card = this.cards.get(id);
    if (!card) return;
    const { node, parts } = card;
    const o = ov.objective;
    setAttr(node, "data-status", ov.status);
    setAttr(parts.status, "data-status", ov.status);
    setText(parts.status, statusLabel(ov.status));
    const worker = ov.worker_id || o.worker;
    setText(parts.worker, worker ? `⚙ ${worker}` : "any worker");
    setAttr(parts.worker, "class", ov.worker_id ? "" : "muted");
    setText(parts.attempt, ov.attempt ? `attempt ${ov.attempt}${ov.failures ? ` (${ov.failures} failed)` : ""}` : "");
    let timing = "";
    if (ov.duration_s) timing = fmtDuration(ov.duration_s);
    else if (ov.started_at && !ov.ended_at) timing = `running ${fmtDuration(Math.max(0, view.last_ts - ov.started_at))}`;
    setText(parts.timing, timing);
    setText(parts.files, ov.files_modified.length ? `${ov.files_modified.length} files` : "");
    setAttr(parts.files, "title", ov.files_modified.length ? ov.files_modified.join("\n") : null);

    const deps = o.depends_on;
    const unknown = deps.filter((d) => !view.objectives.has(d));
    setText(parts.deps, deps.length ? `after ${deps.join(", ")}${unknown.length ? ` (unknown: ${unknown.join(", ")})` : ""}` : "");
    show(parts.deps, deps.length > 0);

    const conflicts = view.conflictsOf(id);
    const ckey = JSON.stringify(conflicts);
    if (parts.conflicts.dataset.key !== ckey) {
      parts.conflicts.dataset.key = ckey;
      clear(parts.conflicts);
      for (const c of conflicts) {
        const other = c.objective_a === id ? c.objective_b : c.objective_a;
        const mine = c.objective_a === id ? c.pattern_a : c.pattern_b;
        const theirs = c.objective_a === id ? c.pattern_b : c.pattern_a;
        parts.conflicts.append(
          el(
            "li",
            { class: "conflict", testid: "conflict", data: { with: other, witness: c.witness } },
            "⚠ overlaps ",
            el("code", { text: other }),
            " on ",
            el("code", { class: "witness", testid: "conflict-witness", text: c.witness }),
            el("span", { class: "muted", text: ` (${mine} ∩ ${theirs})` }),
          ),
        );
      }
    }
    show(parts.conflicts, conflicts.length > 0);
    setAttr(node, "data-conflict", conflicts.length ? "true" : null);

    setText(parts.violations, ov.violations.length ? `✖ scope violated: ${ov.violations.join(", ")}` : "");
    show(parts.violations, ov.violations.length > 0);
    setAttr(node, "data-violation", ov.violations.length ? "true" : null);

    const reason = ov.status === "failed" || ov.reason ? ov.reason || "" : "";
    const exit = ov.status === "failed" && ov.exit_code != null ? ` (exit ${ov.exit_code})` : "";
    setText(parts.reason, reason || exit ? `${reason}${exit}`.trim() : "");
    show(parts.reason, !!(reason || exit));
  }

  /** Draw the dependency arrows and conflict arcs from the cards' current positions. */
  layoutLinks(view) {
    if (!this.cards.size) {
      clear(this.edges);
      return;
    }
    const origin = this.canvas.getBoundingClientRect();
    const rects = new Map();
    for (const [id, card] of this.cards) {
      const r = card.node.getBoundingClientRect();
      rects.set(id, {
        left: r.left - origin.left,
        right: r.right - origin.left,
        top: r.top - origin.top,
        height: r.height,
        mid: r.top - origin.top + Math.min(r.height / 2, 28),
      });
    }
    // Several arrows leaving or reaching one card fan out along its side.
    const outgoing = new Map();
    const incoming = new Map();
    for (const [id, ov] of view.objectives) {
      for (const dep of ov.objective.depends_on) {
        if (!rects.has(dep) || !rects.has(id)) continue;
        if (!outgoing.has(dep)) outgoing.set(dep, []);
        outgoing.get(dep).push(id);
        if (!incoming.has(id)) incoming.set(id, []);
        incoming.get(id).push(dep);
      }
    }
    const port = (rect, i, n) => {
      if (n <= 1) return rect.mid;
      const span = Math.min(rect.height - 16, 12 * (n - 1));
      const y = rect.mid - span / 2 + (span * i) / (n - 1);
      return Math.max(rect.top + 8, Math.min(rect.top + rect.height - 8, y));
    };
    setAttr(this.links, "width", Math.ceil(this.canvas.scrollWidth));
    setAttr(this.links, "height", Math.ceil(this.canvas.scrollHeight));
    const frag = document.createDocumentFragment();
    for (const [id, ov] of view.objectives) {
      const to = rects.get(id);
      if (!to) continue;
      for (const dep of ov.objective.depends_on) {
        const from = rects.get(dep);
        const depView = view.objectives.get(dep);
        if (!from || !depView) continue;
        const bad = depView.objective.wave >= ov.objective.wave;
        const state = bad ? "bad" : depView.status === "completed" ? "done" : "wait";
        const outs = outgoing.get(dep);
        const ins = incoming.get(id);
        const y1 = port(from, outs.indexOf(id), outs.length);
        const y2 = port(to, ins.indexOf(dep), ins.length);
        let d;
        if (to.left > from.right) {
          const x1 = from.right;
          const x2 = to.left - 2;
          const dx = Math.max(24, (x2 - x1) / 2);
          d = `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`;
        } else {
          // Same or earlier column: a loop on the left side.
          const x1 = from.left;
          const x2 = to.left - 2;
          const bend = Math.min(x1, x2) - 28;
          d = `M${x1},${y1} C${bend},${y1} ${bend},${y2} ${x2},${y2}`;
        }
        frag.append(
          svg("path", {
            d,
            class: `dep-edge ${state}`,
            "data-testid": "dep-edge",
            "data-from": dep,
            "data-to": id,
            "marker-end": `url(#flow-arrow-${state})`,
          }),
        );
      }
    }
    for (const c of view.conflicts) {
      const a = rects.get(c.objective_a);
      const b = rects.get(c.objective_b);
      if (!a || !b) continue;
      const x = Math.max(a.right, b.right);
      const bulge = x + 22;
      const d = `M${a.right},${a.mid} C${bulge},${a.mid} ${bulge},${b.mid} ${b.right},${b.mid}`;
      frag.append(
        svg("path", {
          d,
          class: "conflict-edge",
          "data-testid": "conflict-edge",
          "data-from": c.objective_a,
          "data-to": c.objective_b,
        }),
      );
    }
    clear(this.edges);
    this.edges.append(frag);
  }
}
