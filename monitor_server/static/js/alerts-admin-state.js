// Pure logic of the alerts page's management (admin): request bodies from form values, and the
// one-line summaries of rules, notifiers and silences. No DOM: node --test covers it.

const words = (text) => String(text ?? "").split(/[\s,]+/).map((w) => w.trim()).filter(Boolean);

function number(text, label, { required = false } = {}) {
  const raw = String(text ?? "").trim();
  if (!raw) {
    if (required) throw new Error(`${label} is required`);
    return null;
  }
  const n = Number(raw);
  if (!Number.isFinite(n)) throw new Error(`${label} must be a number`);
  return n;
}

// POST /alert-rules from the form's values (strings): threshold or offline. Throws a readable Error.
export function ruleBody(f) {
  const name = String(f.name ?? "").trim();
  if (!name) throw new Error("name is required");
  const seconds = number(f.for, "for") ?? 0;
  if (seconds < 0) throw new Error("for must be 0 or more");
  const selector = {};
  const tags = words(f.tags);
  const devices = words(f.devices);
  if (tags.length) selector.tags = tags;
  if (devices.length) selector.devices = devices;
  if (f.kind === "offline") return { name, kind: "offline", for: seconds, selector };
  const metric = String(f.metric ?? "").trim();
  if (!metric) throw new Error("metric is required");
  const body = {
    name, kind: "threshold", metric, op: f.op || ">", value: number(f.value, "value", { required: true }),
    for: seconds, severity: f.severity || "warning", selector,
  };
  const clear = number(f.clear_value, "clear value");
  if (clear !== null) body.clear_value = clear;
  return body;
}

// POST /notifiers: a webhook (http/https) or an apprise URL (ntfy://, slack://, mailto://...).
export function notifierBody(f) {
  const name = String(f.name ?? "").trim();
  const url = String(f.url ?? "").trim();
  const kind = f.kind === "apprise" ? "apprise" : "webhook";
  if (!name) throw new Error("name is required");
  if (!url) throw new Error("url is required");
  if (kind === "webhook" && !/^https?:\/\//i.test(url)) throw new Error("a webhook url starts with http:// or https://");
  if (kind === "apprise" && !/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) throw new Error("an apprise url looks like ntfy://topic");
  return { name, kind, url };
}

function selectorText(selector = {}) {
  const parts = [];
  if (selector.tags?.length) parts.push(`tags ${selector.tags.join(", ")}`);
  if (selector.devices?.length) parts.push(`devices ${selector.devices.join(", ")}`);
  return parts.length ? parts.join("; ") : "all devices";
}

export function ruleSummary(r) {
  const scope = selectorText(r.selector);
  if (r.kind === "offline") return `offline for ${r.for} s · ${scope}`;
  if (r.kind === "status") return `status error for ${r.for} s · ${scope}`;
  const clear = r.clear_value == null ? "" : ` (clear ${r.clear_value})`;
  return `${r.metric} ${r.op} ${r.value}${clear} for ${r.for} s · ${r.severity} · ${scope}`;
}

export function silenceSummary(s) {
  const m = s.matchers ?? {};
  const what = Object.entries(m).filter(([, v]) => v != null).map(([k, v]) => `${k}=${v}`).join(", ");
  return `${what || "everything"}${s.comment ? ` · ${s.comment}` : ""}`;
}
