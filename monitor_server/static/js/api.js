// REST calls from the page: the session cookie authenticates; X-Monitor-UI marks them as ours (CSRF).
// The browser adds Origin to every write (POST, PATCH, DELETE); the hub checks both.

const HEADERS = { "X-Monitor-UI": "1", Accept: "application/json" };

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

async function call(method, path, body) {
  const init = { method, credentials: "same-origin", headers: { ...HEADERS } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 401) {
    location.reload();  // session gone: the hub serves the login form
    throw new ApiError("logged out", 401);
  }
  const data = await response.json().catch(() => null);
  if (response.status === 403) window.dispatchEvent(new Event("monitor:forbidden"));  // role changed?
  if (!response.ok) throw new ApiError(data?.detail ?? `${method} ${path}: HTTP ${response.status}`, response.status);
  return data;
}

const dev = (id) => `/devices/${encodeURIComponent(id)}`;
const name = (value) => encodeURIComponent(value);

export const api = {
  devices: () => call("GET", "/devices"),
  device: (id) => call("GET", dev(id)),
  metrics: (id, sinceSeconds, step) => call("GET", `${dev(id)}/metrics?since=${sinceSeconds}&step=${step}&limit=10000`),
  events: (id) => call("GET", `${dev(id)}/events?limit=500`),
  commands: (id) => call("GET", `${dev(id)}/commands?limit=200`),
  send: (id, command, args) => call("POST", `${dev(id)}/commands`, { command, args }),
  updateDevice: (id, body) => call("PATCH", dev(id), body),
  sendBulk: (body) => call("POST", "/commands/bulk", body),
  bulk: (bulkId, limit) => call("GET", `/commands/bulk/${encodeURIComponent(bulkId)}?limit=${limit}`),
  cancel: (id, cid) => call("DELETE", `${dev(id)}/commands/${cid}`),
  // Identity (admin pages; the credential's state is readable by every role)
  credential: (id) => call("GET", `${dev(id)}/credential`),
  revoke: (id) => call("POST", `${dev(id)}/revoke`),
  rotate: (id) => call("POST", `${dev(id)}/rotate`),
  reset: (id) => call("POST", `${dev(id)}/reset`),
  users: () => call("GET", "/users"),
  createUser: (body) => call("POST", "/users", body),
  updateUser: (user, body) => call("PATCH", `/users/${name(user)}`, body),
  deleteUser: (user) => call("DELETE", `/users/${name(user)}`),
  apiKeys: () => call("GET", "/api-keys"),
  createApiKey: (body) => call("POST", "/api-keys", body),
  deleteApiKey: (id) => call("DELETE", `/api-keys/${name(id)}`),
  enrollmentTokens: () => call("GET", "/enrollment-tokens"),
  createEnrollmentToken: (body) => call("POST", "/enrollment-tokens", body),
  deleteEnrollmentToken: (id) => call("DELETE", `/enrollment-tokens/${name(id)}`),
  alerts: () => call("GET", "/alerts"),
  silence: (body) => call("POST", "/silences", body),
  silences: () => call("GET", "/silences"),
  endSilence: (id) => call("DELETE", `/silences/${name(id)}`),
  alertRules: () => call("GET", "/alert-rules"),
  createAlertRule: (body) => call("POST", "/alert-rules", body),
  updateAlertRule: (id, body) => call("PATCH", `/alert-rules/${name(id)}`, body),
  deleteAlertRule: (id) => call("DELETE", `/alert-rules/${name(id)}`),
  notifiers: () => call("GET", "/notifiers"),
  createNotifier: (body) => call("POST", "/notifiers", body),
  deleteNotifier: (id) => call("DELETE", `/notifiers/${name(id)}`),
  releases: () => call("GET", "/releases"),
  release: (version) => call("GET", `/releases/${name(version)}`),
  rollOut: (version, body) => call("POST", `/releases/${name(version)}/rollout`, body),
  audit: (sinceSeconds, limit) => call("GET", `/audit?limit=${limit}${sinceSeconds == null ? "" : `&since=${sinceSeconds}`}`),
};
