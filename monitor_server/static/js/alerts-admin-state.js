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

// POST /alert-rules from the form's values (strings; `notifiers` an array of ids, none ticked = every
// notifier): threshold, offline or status. Throws a readable Error.
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
  const notifiers = notifierIds(f.notifiers);
  const routed = notifiers.length ? { notifiers } : {};
  const severity = f.severity || "warning";
  if (f.kind === "offline" || f.kind === "status") {
    return { name, kind: f.kind, for: seconds, severity, selector, ...routed };
  }
  const metric = String(f.metric ?? "").trim();
  if (!metric) throw new Error("metric is required");
  const body = {
    name, kind: "threshold", metric, op: f.op || ">", value: number(f.value, "value", { required: true }),
    for: seconds, severity, selector, ...routed,
  };
  const clear = number(f.clear_value, "clear value");
  if (clear !== null) body.clear_value = clear;
  return body;
}

// PATCH /alert-rules/{id} from the edit form: every field given, so what the form empties is
// cleared (an offline rule has no metric, op, value or clear value; no notifier ticked = all).
export function ruleUpdateBody(f) {
  const body = ruleBody(f);
  const cleared = body.kind === "threshold" ? { clear_value: null } : { metric: null, op: null, value: null, clear_value: null };
  return { ...cleared, ...body, notifiers: body.notifiers ?? [] };
}

// A rule as GET /alert-rules gives it, as the rule form's values (strings; notifier ids as strings).
export function ruleFormValues(r) {
  const text = (v) => (v == null ? "" : String(v));
  return {
    kind: r.kind, name: r.name, metric: text(r.metric), op: r.op ?? ">", value: text(r.value),
    clear_value: text(r.clear_value), for: text(r.for ?? 0), severity: r.severity ?? "warning",
    tags: (r.selector?.tags ?? []).join(", "), devices: (r.selector?.devices ?? []).join(", "),
    notifiers: (r.notifiers ?? []).map(String),
  };
}

function notifierIds(list) {
  const ids = [];
  for (const raw of list ?? []) {
    const id = Number(raw);
    if (!Number.isInteger(id) || id < 1) throw new Error(`unknown notifier ${raw}`);
    if (!ids.includes(id)) ids.push(id);
  }
  return ids;
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

// One line per rule; `names` maps notifier ids to names (admins list notifiers; others see ids).
export function ruleSummary(r, names = new Map()) {
  const scope = selectorText(r.selector);
  const to = r.notifiers?.length ? ` · to ${r.notifiers.map((id) => names.get(id) ?? `#${id}`).join(", ")}` : "";
  if (r.kind === "offline") return `offline for ${r.for} s · ${scope}${to}`;
  if (r.kind === "status") return `status error for ${r.for} s · ${scope}${to}`;
  const clear = r.clear_value == null ? "" : ` (clear ${r.clear_value})`;
  return `${r.metric} ${r.op} ${r.value}${clear} for ${r.for} s · ${r.severity} · ${scope}${to}`;
}

export function silenceSummary(s) {
  const m = s.matchers ?? {};
  const what = Object.entries(m).filter(([, v]) => v != null).map(([k, v]) => `${k}=${v}`).join(", ");
  return `${what || "everything"}${s.comment ? ` · ${s.comment}` : ""}`;
}
