// Worker cards (seed 001): status light, counters, usage, tools, files and a feed of
// activities coloured by kind, newest on top. A card is updated only when its worker
// changed; its feed holds at most the view's feedLimit entries (200): new entries are
// added on top, the oldest removed at the bottom.

import { el, setAttr, setText, show, clear, syncNewestFirst } from "./dom.js";
import { fmtBytes, fmtClock, fmtCost, fmtCount, fmtDuration, kindLabel } from "./format.js";

const TOOLS_SHOWN = 8;

export class WorkersView {
  constructor(root) {
    this.root = root;
    this.empty = el("p", { class: "muted", testid: "workers-empty", text: "No worker has started on this session yet." });
    this.grid = el("div", { class: "worker-grid", testid: "worker-grid" });
    root.append(this.empty, this.grid);
    this.cards = new Map();
  }

  /** Update the cards of `dirty` workers (a Set of ids), or all when `dirty` is null. */
  render(view, dirty) {
    show(this.empty, view.workers.size === 0);
    for (const [id, card] of this.cards) {
      if (!view.workers.has(id)) {
        card.node.remove();
        this.cards.delete(id);
      }
    }
    let order = 0;
    for (const [id, w] of view.workers) {
      let card = this.cards.get(id);
      const isNew = !card;
      if (isNew) {
        card = makeCard(id);
        this.cards.set(id, card);
      }
      // Keep the fold's order (first seen first) even after a replay seek.
      if (this.grid.children[order] !== card.node) this.grid.insertBefore(card.node, this.grid.children[order] || null);
      order += 1;
      if (isNew || !dirty || dirty.has(id)) updateCard(card, w);
    }
  }
}

function stat(label, testid, title) {
  const value = el("dd", { testid });
  const node = el("div", { class: "stat", title }, el("dt", { text: label }), value);
  return { node, value };
}

function makeCard(id) {
  const s = {
    done: stat("done", "tasks-done", "objectives completed"),
    failed: stat("failed", "tasks-failed", "objectives failed"),
    files: stat("files", "files-modified", "files modified by completed objectives"),
    activities: stat("activities", "activity-count", "activities seen in this session"),
    errors: stat("errors", "error-count", "worker errors"),
    uptime: stat("uptime", "uptime", "uptime of the agent process (latest sample)"),
    tokens: stat("tokens", "tokens", "model tokens in / out"),
    cost: stat("cost", "cost", "model cost"),
    cpu: stat("cpu", "cpu", "CPU of one core (latest sample)"),
    rss: stat("memory", "rss", "resident memory (latest sample)"),
  };
  const parts = {
    light: el("span", { class: "light", testid: "status-light", attrs: { "aria-hidden": "true" } }),
    status: el("span", { class: "worker-status", testid: "worker-status" }),
    objective: el("code", { class: "worker-objective", testid: "worker-objective" }),
    tools: el("ul", { class: "chips tools", testid: "tools" }),
    filesList: el("ol", { class: "files-list", testid: "files-list" }),
    filesBox: null,
    lastError: el("p", { class: "last-error", testid: "last-error" }),
    feed: el("ol", { class: "feed", testid: "feed", attrs: { "aria-live": "off" } }),
  };
  parts.filesBox = el("details", { class: "files" }, el("summary", { text: "files modified" }), parts.filesList);
  const node = el(
    "article",
    { class: "worker-card", testid: `worker-card-${id}`, data: { "worker-id": id } },
    el("header", { class: "worker-head" }, parts.light, el("h4", { class: "worker-id", text: id }), parts.status, parts.objective),
    el("dl", { class: "stats" }, Object.values(s).map((x) => x.node)),
    parts.tools,
    parts.filesBox,
    parts.lastError,
    parts.feed,
  );
  return { node, s, parts, filesShown: 0, toolsKey: "" };
}

function updateCard(card, w) {
  const { node, s, parts } = card;
  const light = w.status === "busy" ? "busy" : w.last_result === "failed" ? "failed" : "idle";
  setAttr(node, "data-status", w.status);
  setAttr(node, "data-light", light);
  setText(parts.status, light === "failed" ? "idle · last task failed" : w.status);
  setText(parts.objective, w.objective_id);
  show(parts.objective, !!w.objective_id);

  setText(s.done.value, w.tasks_completed);
  setText(s.failed.value, w.tasks_failed);
  setText(s.files.value, w.files_modified.length);
  setText(s.activities.value, w.activities);
  setText(s.errors.value, w.errors);
  setAttr(s.failed.node, "data-nonzero", w.tasks_failed > 0 ? "true" : null);
  setAttr(s.errors.node, "data-nonzero", w.errors > 0 ? "true" : null);
  setText(s.uptime.value, w.uptime_seconds ? fmtDuration(w.uptime_seconds) : "–");
  const hasTokens = w.input_tokens > 0 || w.output_tokens > 0;
  setText(s.tokens.value, hasTokens ? `${fmtCount(w.input_tokens)} / ${fmtCount(w.output_tokens)}` : "–");
  setText(s.cost.value, w.cost_usd > 0 ? fmtCost(w.cost_usd) : "–");
  setText(s.cpu.value, w.cpu_percent ? `${w.cpu_percent.toFixed(0)}%` : "–");
  setText(s.rss.value, w.rss_bytes ? fmtBytes(w.rss_bytes) : "–");
  // Usage only when the agent reports it.
  show(s.tokens.node, hasTokens);
  show(s.cost.node, w.cost_usd > 0);
  show(s.cpu.node, w.cpu_percent > 0 || w.rss_bytes > 0);
  show(s.rss.node, w.rss_bytes > 0);

  const tools = [...w.tools_used.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const toolsKey = tools.map(([k, v]) => `${k}:${v}`).join("\u0000");
  if (toolsKey !== card.toolsKey) {
    card.toolsKey = toolsKey;
    clear(parts.tools);
    for (const [name, n] of tools.slice(0, TOOLS_SHOWN)) {
      parts.tools.append(el("li", { class: "chip tool", data: { tool: name } }, el("span", { text: name }), el("b", { text: n })));
    }
    if (tools.length > TOOLS_SHOWN) {
      const rest = tools.slice(TOOLS_SHOWN);
      parts.tools.append(el("li", { class: "chip muted", text: `+${rest.length} more`, title: rest.map(([k, v]) => `${k} ${v}`).join("\n") }));
    }
  }
  show(parts.tools, tools.length > 0);

  // files_modified only grows within a fold; a replay seek back rebuilds.
  const files = w.files_modified;
  if (files.length < card.filesShown) {
    clear(parts.filesList);
    card.filesShown = 0;
  }
  for (let i = card.filesShown; i < files.length && i < 500; i += 1) parts.filesList.append(el("li", { text: files[i] }));
  card.filesShown = Math.min(files.length, 500);
  show(parts.filesBox, files.length > 0);

  const err = w.last_error;
  setText(parts.lastError, err ? `${fmtClock(err.ts)} ${err.error}` : "");
  setAttr(parts.lastError, "title", err ? err.error : null);
  show(parts.lastError, !!err);

  syncNewestFirst(parts.feed, w.feed, feedEntry);
}

function feedEntry(a) {
  const kind = a.activity_type || "other";
  const title = [a.description, a.file_path, a.objective_id && `objective ${a.objective_id}`, `seq ${a.seq}`]
    .filter(Boolean)
    .join("\n");
  return el(
    "li",
    { class: `feed-entry kind-${kind}`, testid: "feed-entry", data: { seq: a.seq, kind }, title },
    el("time", { class: "fe-time", text: fmtClock(a.ts) }),
    el("span", { class: "fe-kind", text: kindLabel(kind) }),
    a.tool_name ? el("span", { class: "fe-tool", text: a.tool_name }) : null,
    el("span", { class: "fe-desc", text: a.description || "" }),
    a.file_path ? el("code", { class: "fe-file", text: a.file_path }) : null,
    a.exit_code != null ? el("span", { class: `fe-exit${a.exit_code ? " bad" : ""}`, text: `exit ${a.exit_code}` }) : null,
  );
}
