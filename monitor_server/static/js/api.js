// REST calls from the page: the session cookie authenticates; X-Monitor-UI marks them as ours (CSRF).

const HEADERS = { "X-Monitor-UI": "1", Accept: "application/json" };

async function call(method, path, body) {
  const init = { method, credentials: "same-origin", headers: { ...HEADERS } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 401) {
    location.reload();  // session gone: the hub serves the login form
    throw new Error("logged out");
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new Error(data?.detail ?? `${method} ${path}: HTTP ${response.status}`);
  return data;
}

const dev = (id) => `/devices/${encodeURIComponent(id)}`;

export const api = {
  devices: () => call("GET", "/devices"),
  device: (id) => call("GET", dev(id)),
  metrics: (id, sinceSeconds, step) => call("GET", `${dev(id)}/metrics?since=${sinceSeconds}&step=${step}&limit=10000`),
  events: (id) => call("GET", `${dev(id)}/events?limit=500`),
  commands: (id) => call("GET", `${dev(id)}/commands?limit=200`),
  send: (id, command, args) => call("POST", `${dev(id)}/commands`, { command, args }),
  cancel: (id, cid) => call("DELETE", `${dev(id)}/commands/${cid}`),
};
