// The broadcaster's REST API. With `?token=T` in the page's address every request
// carries `Authorization: Bearer T` (and the WebSocket `token=T`).

/** The access token from the page's address (`?token=T`), or "". */
export function tokenFromLocation(loc = window.location) {
  return new URLSearchParams(loc.search).get("token") || "";
}

export class Api {
  constructor(token = "", base = "") {
    this.token = token;
    this.base = base;
  }

  /**
   * Send a request; resolve to {ok, status, data, error}. Never rejects: a network
   * failure is status 0 with an error line; a non-2xx answer's error line is its
   * {"error": "..."} or its status text.
   */
  async request(method, path, body) {
    const headers = { Accept: "application/json" };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let res;
    try {
      res = await fetch(this.base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch (err) {
      return { ok: false, status: 0, data: null, error: "cannot reach the dashboard server" };
    }
    let data = null;
    const text = await res.text().catch(() => "");
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    let error = "";
    if (!res.ok) {
      error =
        (data && typeof data.error === "string" && data.error) ||
        `${res.status} ${res.statusText || "error"}`.trim();
      if (res.status === 401 || res.status === 403) {
        error = `${error} (open the dashboard with ?token=… of the mesh's AP_TOKEN)`;
      }
    }
    return { ok: res.ok, status: res.status, data, error };
  }

  get(path) {
    return this.request("GET", path);
  }

  post(path, body = {}) {
    return this.request("POST", path, body);
  }

  sessions() {
    return this.get("/api/sessions");
  }

  session(id) {
    return this.get(`/api/sessions/${encodeURIComponent(id)}`);
  }

  /** One page of a session's events: {"events", "next", "last_seq"}. */
  sessionEvents(id, since, limit) {
    return this.get(`/api/sessions/${encodeURIComponent(id)}/events?since=${since}&limit=${limit}`);
  }

  workers() {
    return this.get("/api/workers");
  }

  health() {
    return this.get("/api/health");
  }

  submit(body) {
    return this.post("/api/sessions", body);
  }

  /** action: "approve" | "reject" | "cancel" */
  act(id, action, reason) {
    return this.post(`/api/sessions/${encodeURIComponent(id)}/${action}`, reason == null ? {} : { reason });
  }
}
