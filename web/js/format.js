// Formatting of numbers, times and activity kinds for display. No DOM.

/** "5m 23s", "2h 04m", "12.3s" */
export function fmtDuration(seconds) {
  const s = Number(seconds) || 0;
  if (s < 10) return `${s.toFixed(1)}s`;
  if (s < 60) return `${Math.round(s)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, "0")}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${String(m % 60).padStart(2, "0")}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

const pad = (n) => String(n).padStart(2, "0");

/** Local "HH:MM:SS" of Unix seconds. */
export function fmtClock(ts) {
  if (!ts) return "";
  const d = new Date(ts * 1000);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Local "YYYY-MM-DD HH:MM:SS" of Unix seconds. */
export function fmtDateTime(ts) {
  if (!ts) return "";
  const d = new Date(ts * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${fmtClock(ts)}`;
}

/** "just now", "5 min ago", "3 h ago", "2 d ago" */
export function fmtAgo(ts, now = Date.now() / 1000) {
  if (!ts) return "";
  const s = Math.max(0, now - ts);
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400 * 2) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function fmtBytes(n) {
  const b = Number(n) || 0;
  if (b < 1024) return `${b} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = b / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** 950, 12.3k, 4.5M */
export function fmtCount(n) {
  const v = Number(n) || 0;
  if (v < 1000) return String(v);
  if (v < 1e6) return `${(v / 1e3).toFixed(v < 1e4 ? 1 : 0)}k`;
  return `${(v / 1e6).toFixed(v < 1e7 ? 1 : 0)}M`;
}

export function fmtCost(usd) {
  const v = Number(usd) || 0;
  return v >= 1 ? `$${v.toFixed(2)}` : `$${v.toFixed(4)}`;
}

export function shortSha(sha) {
  return sha ? String(sha).slice(0, 10) : "";
}

/** Label of each activity kind in the feed (its colour is in style.css, .kind-<type>). */
export const KIND_LABELS = {
  tool_use: "tool",
  command: "cmd",
  file_change: "edit",
  reasoning: "think",
  testing: "test",
  error: "error",
  message: "msg",
  usage: "usage",
  other: "other",
};

export function kindLabel(type) {
  return KIND_LABELS[type] || String(type || "other");
}

export const STATUS_LABELS = {
  analysing: "analysing",
  planning: "planning",
  validating: "validating",
  awaiting_approval: "awaiting approval",
  running: "running",
  completed: "completed",
  failed: "failed",
  cancelled: "cancelled",
};

export function statusLabel(status) {
  return STATUS_LABELS[status] || String(status || "unknown").replace(/_/g, " ");
}
