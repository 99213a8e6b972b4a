// The device page: facts (every metric the agent sends, with units), charts over a range up to a
// year with live points and a hover readout, presence, the commands the device offers, commands.
import { api } from "./api.js";
import { LineChart } from "./chart.js";
import { CommandPanel } from "./commands.js";
import { DeviceMeta } from "./device-meta.js";
import { CredentialPanel } from "./credential.js";
import {
  ago, bytes, celsius, chartStep, clock, dateTime, decimal, duration, parseTime, percent, rate, usedOf,
} from "./format.js";

const pct = { max: 100, format: (v) => `${v.toFixed(0)}%`, valueFormat: percent };
const BLUE = "#2457c5", ORANGE = "#c2410c", PURPLE = "#7c3aed", TEAL = "#0f766e";
// The ranges offered (seconds); the select in the page stays the one source of the choice.
const RANGES = [
  [900, "15 minutes", "15m"], [3600, "1 hour", "1h"], [21600, "6 hours", "6h"], [86400, "24 hours", "24h"],
  [604800, "7 days", "7d"], [2592000, "30 days", "30d"], [31536000, "1 year", "1y"],
];
// Charts beyond the page's four: [key, caption, series [field, label, colour], options]
const EXTRA_CHARTS = [
  ["load", "Load average", [["load_1", "1 min", BLUE], ["load_5", "5 min", PURPLE], ["load_15", "15 min", ORANGE]],
    { format: (v) => decimal(v, 1), valueFormat: (v) => decimal(v, 2) }],
  ["memory", "Memory and swap used", [["mem_used", "memory", PURPLE], ["swap_used", "swap", ORANGE]], { format: bytes }],
  ["diskio", "Disk I/O", [["disk_read_bps", "read", BLUE], ["disk_write_bps", "write", ORANGE]], { format: rate }],
  ["temp", "Temperature", [["temp_max", "hottest sensor", ORANGE]], { format: (v) => `${v.toFixed(0)} °C`, valueFormat: celsius }],
  ["procs", "Processes", [["procs", "processes", TEAL]], { format: (v) => v.toFixed(0), valueFormat: (v) => decimal(v, 1) }],
];
// Fields of each chart, in series order (the page's four charts first).
const CHART_FIELDS = {
  cpu: ["cpu"], ram: ["ram"], disk: ["disk"], net: ["net_rx_bps", "net_tx_bps"],
  ...Object.fromEntries(EXTRA_CHARTS.map(([key, , series]) => [key, series.map(([field]) => field)])),
};
const LIVE_STEP_BELOW = 60;  // raw buckets: live samples are appended; coarser ranges reload each minute

export class DeviceView {
  constructor(root, state, now, role) {
    Object.assign(this, { root, state, now, role });
    this.deviceId = null;
    this.range = root.querySelector("#range");
    this.note = root.querySelector("#range-note");
    this.rangeButtons = rangeChoices(this.range);
    this.charts = {
      cpu: new LineChart(root.querySelector("#chart-cpu"), { ...pct, series: [{ color: BLUE, label: "CPU" }] }),
      ram: new LineChart(root.querySelector("#chart-ram"), { ...pct, series: [{ color: PURPLE, label: "RAM" }] }),
      disk: new LineChart(root.querySelector("#chart-disk"), { ...pct, series: [{ color: TEAL, label: "Disk" }] }),
      net: new LineChart(root.querySelector("#chart-net"), {
        format: rate, series: [{ color: BLUE, label: "rx" }, { color: ORANGE, label: "tx" }],
      }),
    };
    const grid = root.querySelector(".charts");
    for (const [key, caption, series, options] of EXTRA_CHARTS) {
      const canvas = chartFigure(grid, key, caption, series);
      this.charts[key] = new LineChart(canvas, { ...options, series: series.map(([, label, color]) => ({ color, label })) });
    }
    this.offered = offeredCommands(root);
    this.step = chartStep(Number(this.range.value));
    this.loadedAt = 0;
    this.timeline = root.querySelector("#timeline");
    this.presence = [];
    this.commands = new CommandPanel(root, role);
    this.meta = new DeviceMeta(root, state);  // the title (display name), tags and their editor
    this.credential = new CredentialPanel(root);
    this.range.addEventListener("change", () => this.loadMetrics());
    state.subscribe((ids, events) => this.onEvents(ids, events));
    setInterval(() => this.slideWindow(), 5000);
  }

  async show(deviceId) {
    this.deviceId = deviceId;
    this.meta.show(deviceId);
    this.renderFacts();
    await Promise.all([
      this.loadMetrics(), this.loadPresence(), this.loadOffered(), this.commands.show(deviceId),
      this.credential.show(deviceId),
    ]);
  }

  hide() { this.deviceId = null; }

  resync() {
    if (this.deviceId) this.show(this.deviceId);
  }

  windowSeconds() { return Number(this.range.value); }

  async loadMetrics() {
    const id = this.deviceId;
    if (!id) return;
    const to = this.now(), from = to - this.windowSeconds() * 1000;
    for (const button of this.rangeButtons) button.setAttribute("aria-pressed", String(button.value === this.range.value));
    // Buckets of a listed step, at most 1000 whatever the range (1 h -> 5 s, 24 h -> 2 min,
    // 1 year -> 12 h); from a minute up the hub reads its minute and hour rollups.
    const step = chartStep(this.windowSeconds());
    const { samples, step: answered } = await api.metrics(id, from / 1000, step);
    if (id !== this.deviceId) return;
    this.step = answered ?? step;
    this.loadedAt = to;
    const points = samples.map(toPoint);
    for (const [key, chart] of Object.entries(this.charts)) chart.setData(points.map((p) => p[key]), from, to);
    this.note.textContent = `${samples.length} points`
      + (this.step >= LIVE_STEP_BELOW ? ` · ${duration(this.step)} averages` : "");
  }

  // The commands this device's agent announced in its hello (GET /devices/{id}: ``commands``,
  // known while it is connected): listed for every role, and suggested by the command form's name.
  async loadOffered() {
    const id = this.deviceId;
    let names = null;
    try {
      names = (await api.device(id)).commands ?? null;
    } catch {
      names = null;
    }
    if (id !== this.deviceId) return;
    const { list, note, suggestions } = this.offered;
    list.replaceChildren(...(names ?? []).map((name) => {
      const li = document.createElement("li");
      const code = document.createElement("code");
      code.textContent = name;
      li.append(code);
      return li;
    }));
    suggestions.replaceChildren(...(names ?? []).map((name) => new Option(name)));
    note.textContent = names === null
      ? "Not known yet: an agent announces them when it connects over WebSocket."
      : names.length ? "" : "This agent announced no commands.";
  }

  async loadPresence() {
    const id = this.deviceId;
    const { events } = await api.events(id);
    if (id !== this.deviceId) return;
    this.presence = events.map((e) => ({ ...e, at: parseTime(e.at) })).reverse();
    this.renderPresence();
  }

  onEvents(ids, events) {
    if (!this.deviceId || (ids !== null && !ids.has(this.deviceId) && !events.some((e) => e.type === "command"))) return;
    for (const event of events) {
      if (event.type === "command") this.commands.upsert(event);
      if (event.device_id !== this.deviceId) continue;
      if (event.type === "sample") this.addSample(event);
      if (event.type === "presence") this.addPresence(event);
    }
    this.renderFacts();
  }

  addSample(sample) {
    if (this.step >= LIVE_STEP_BELOW) return;  // one sample is not an average: the minute reload adds it
    const point = toPoint(sample);
    for (const [key, chart] of Object.entries(this.charts)) chart.push(point[key]);
  }

  addPresence(event) {
    this.presence.push({ ...event, at: parseTime(event.at) });
    this.renderPresence();
  }

  slideWindow() {
    if (!this.deviceId) return;
    const to = this.now();
    if (this.step >= LIVE_STEP_BELOW && to - this.loadedAt >= 60_000) this.loadMetrics();
    for (const chart of Object.values(this.charts)) chart.setWindow(to - this.windowSeconds() * 1000, to);
    this.renderFacts();
    this.drawTimeline();
  }

  renderFacts() {
    const d = this.state.devices.get(this.deviceId);
    const status = this.root.querySelector("#device-status");
    if (!d) { status.textContent = "unknown device"; return; }
    status.innerHTML = '<span class="badge"></span><small></small>';
    status.firstChild.className = `badge ${d.online ? "on" : "off"}`;
    status.firstChild.textContent = d.online ? "online" : "offline";
    status.lastChild.textContent = d.presence_since
      ? `since ${dateTime(d.presence_since)}${d.presence_reason ? ` · ${d.presence_reason}` : ""}` : "";
    const p = d.last_payload ?? {};
    const facts = [
      ["Host", d.hostname], ["Platform", d.platform], ["Agent version", d.agent_version],
      ["Connection", d.connection], ["Last seen", ago(d.last_seen, this.now())],
      ["Uptime", duration(p.uptime_sec)],
      ["CPU / RAM / Disk", `${percent(p.cpu)} / ${percent(p.ram)} / ${percent(p.disk)}`],
      ["Load 1 / 5 / 15 min", `${decimal(p.load_1)} / ${decimal(p.load_5)} / ${decimal(p.load_15)}`],
      ["Memory used", usedOf(p.mem_used, p.mem_total)],
      ["Swap used", usedOf(p.swap_used, p.swap_total)],
      ["Disk used", usedOf(p.disk_used, p.disk_total)],
      ["Disk read / write", `${rate(p.disk_read_bps)} / ${rate(p.disk_write_bps)}`],
      ["Network rx / tx", `${rate(p.net_rx_bps)} / ${rate(p.net_tx_bps)}`],
      ["Processes", p.procs == null ? "–" : String(p.procs)],
      ["Temperature", celsius(p.temp_max)],
      ["Agent memory (RSS)", bytes(p.agent_rss)],
      ["Agent CPU time", p.agent_cpu_sec == null ? "–" : duration(p.agent_cpu_sec)],
      ["Health", d.status ?? "–"], ["Last error", d.last_error || "none"],
    ];
    if (d.duplicate) {
      const dup = d.duplicate;
      facts.push(["Duplicate id", `another agent (instance ${dup.instance_id}, ${dup.address}) `
        + `claimed this id ${dup.refused}× and was refused, last ${ago(Date.parse(dup.at), this.now())}: `
        + "a cloned machine? give one a distinct device_id"]);
    }
    const dl = this.root.querySelector("#device-facts");
    dl.replaceChildren(...facts.map(([term, value]) => fact(term, value ?? "–")));
  }

  renderPresence() {
    const list = this.root.querySelector("#presence-list");
    const recent = this.presence.slice(-50).reverse();
    list.replaceChildren(...recent.map((e) => {
      const li = document.createElement("li");
      li.textContent = `${dateTime(e.at)} — ${e.online ? "online" : "offline"} (${e.reason}${e.connection ? `, ${e.connection}` : ""})`;
      return li;
    }));
    this.drawTimeline();
  }

  drawTimeline() {
    drawPresence(this.timeline, this.presence, this.now() - this.windowSeconds() * 1000, this.now());
  }
}

function toPoint(s) {
  const t = parseTime(s.ts);
  return Object.fromEntries(Object.entries(CHART_FIELDS).map(([key, fields]) => [key, { t, v: fields.map((f) => s[f] ?? null) }]));
}

// The page's range select gets the ranges up to a year and is replaced on screen by a row of
// buttons that drive it (a change event, so whatever else listens to the select follows).
function rangeChoices(select) {
  const chosen = select.value;
  select.replaceChildren(...RANGES.map(([seconds, label]) => new Option(label, String(seconds))));
  select.value = RANGES.some(([seconds]) => String(seconds) === chosen) ? chosen : "3600";
  const group = document.createElement("div");
  group.className = "range-buttons";
  group.setAttribute("role", "group");
  group.setAttribute("aria-label", "Range");
  const buttons = RANGES.map(([seconds, label, short]) => {
    const button = document.createElement("button");
    button.type = "button";
    button.value = String(seconds);
    button.textContent = short;
    button.title = label;
    button.setAttribute("aria-label", label);
    button.setAttribute("aria-pressed", String(button.value === select.value));
    button.addEventListener("click", () => {
      if (select.value === button.value) return;
      select.value = button.value;
      select.dispatchEvent(new Event("change"));
    });
    return button;
  });
  group.append(...buttons);
  const label = select.closest("label") ?? select;
  label.after(group);
  label.hidden = true;  // the buttons are the control; the select keeps the value for other readers
  return buttons;
}

function chartFigure(grid, key, caption, series) {
  const figure = document.createElement("figure");
  const figcaption = document.createElement("figcaption");
  figcaption.append(`${caption} (`);
  series.forEach(([, label, color], i) => {
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = color;
    figcaption.append(...(i ? [" / "] : []), swatch, label);
  });
  figcaption.append(")");
  const canvas = document.createElement("canvas");
  canvas.id = `chart-${key}`;
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", `${caption} chart`);
  figure.append(figcaption, canvas);
  grid.append(figure);
  return canvas;
}

// "Offered by this device": a list above the command buttons, filled by loadOffered.
function offeredCommands(root) {
  const box = document.createElement("div");
  box.className = "offered";
  const heading = document.createElement("h3");
  heading.textContent = "Offered by this device";
  const list = document.createElement("ul");
  list.id = "offered-commands";
  list.className = "offered-list";
  const note = document.createElement("p");
  note.className = "muted";
  const suggestions = document.createElement("datalist");
  suggestions.id = "offered-command-names";
  box.append(heading, list, note, suggestions);
  const panel = root.querySelector("#commands")?.closest(".panel");
  panel?.querySelector("h2")?.after(box);
  root.querySelector("#command-name")?.setAttribute("list", suggestions.id);
  return { list, note, suggestions };
}

function fact(term, value) {
  const div = document.createElement("div");
  const dt = document.createElement("dt"), dd = document.createElement("dd");
  dt.textContent = term;
  dd.textContent = value;
  div.append(dt, dd);
  return div;
}

// Online spans solid, offline spans hatched: the strip reads without colour too.
function drawPresence(canvas, events, from, to) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  if (!width) return;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  const x = (t) => ((Math.max(t, from) - from) / (to - from)) * width;
  let online = null, start = from;
  for (const e of events) {
    if (e.at > from) paintSpan(ctx, x(start), x(e.at), height, online);
    online = e.online;
    start = Math.max(e.at, from);
  }
  paintSpan(ctx, x(start), width, height, online);
  ctx.fillStyle = "#1d2330";
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillText(clock(from), 2, height - 4);
  ctx.fillText("now", width - ctx.measureText("now").width - 2, height - 4);
}

function paintSpan(ctx, x0, x1, height, online) {
  if (x1 <= x0 || online === null) return;
  ctx.fillStyle = online ? "#17803d" : "#f3d4d0";
  ctx.fillRect(x0, 0, x1 - x0, height);
  if (online) return;
  ctx.save();
  ctx.beginPath();
  ctx.rect(x0, 0, x1 - x0, height);
  ctx.clip();
  ctx.strokeStyle = "#a1342b";
  ctx.beginPath();
  for (let i = x0 - height; i < x1; i += 6) { ctx.moveTo(i, height); ctx.lineTo(i + height, 0); }
  ctx.stroke();
  ctx.restore();
}
