// The device page: facts, metric charts over a range with live points, presence, commands.
import { api } from "./api.js";
import { LineChart } from "./chart.js";
import { CommandPanel } from "./commands.js";
import { CredentialPanel } from "./credential.js";
import { ago, clock, dateTime, parseTime, percent, rate } from "./format.js";

const pct = { max: 100, format: (v) => `${v.toFixed(0)}%` };

export class DeviceView {
  constructor(root, state, now, role) {
    Object.assign(this, { root, state, now, role });
    this.deviceId = null;
    this.range = root.querySelector("#range");
    this.note = root.querySelector("#range-note");
    this.charts = {
      cpu: new LineChart(root.querySelector("#chart-cpu"), { ...pct, series: [{ color: "#2457c5" }] }),
      ram: new LineChart(root.querySelector("#chart-ram"), { ...pct, series: [{ color: "#7c3aed" }] }),
      disk: new LineChart(root.querySelector("#chart-disk"), { ...pct, series: [{ color: "#0f766e" }] }),
      net: new LineChart(root.querySelector("#chart-net"), {
        format: rate, series: [{ color: "#2457c5" }, { color: "#c2410c" }],
      }),
    };
    this.timeline = root.querySelector("#timeline");
    this.presence = [];
    this.commands = new CommandPanel(root, role);
    this.credential = new CredentialPanel(root);
    this.range.addEventListener("change", () => this.loadMetrics());
    state.subscribe((ids, events) => this.onEvents(ids, events));
    setInterval(() => this.slideWindow(), 5000);
  }

  async show(deviceId) {
    this.deviceId = deviceId;
    this.root.querySelector("#device-title").textContent = deviceId;
    this.renderFacts();
    await Promise.all([
      this.loadMetrics(), this.loadPresence(), this.commands.show(deviceId), this.credential.show(deviceId),
    ]);
  }

  hide() { this.deviceId = null; }

  resync() {
    if (this.deviceId) this.show(this.deviceId);
  }

  windowSeconds() { return Number(this.range.value); }

  async loadMetrics() {
    const id = this.deviceId;
    const to = this.now(), from = to - this.windowSeconds() * 1000;
    // Averages over buckets: about 720 points whatever the range (1 h -> 5 s, 7 days -> 14 min).
    const { samples } = await api.metrics(id, from / 1000, this.windowSeconds() / 720);
    if (id !== this.deviceId) return;
    const points = samples.map(toPoint);
    for (const [key, chart] of Object.entries(this.charts)) chart.setData(points.map((p) => p[key]), from, to);
    this.note.textContent = `${samples.length} points`;
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
      ["CPU / RAM / Disk", `${percent(p.cpu)} / ${percent(p.ram)} / ${percent(p.disk)}`],
      ["Network rx / tx", `${rate(p.net_rx_bps)} / ${rate(p.net_tx_bps)}`],
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
  return {
    cpu: { t, v: [s.cpu] }, ram: { t, v: [s.ram] }, disk: { t, v: [s.disk] },
    net: { t, v: [s.net_rx_bps ?? null, s.net_tx_bps ?? null] },
  };
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
