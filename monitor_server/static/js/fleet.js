// The fleet table: one row per device, updated in place; DOM work batched on animation frames.
import { ago, clock, percent } from "./format.js";

const METRICS = ["cpu", "ram", "disk"];
const LIVE_SORT_KEYS = new Set(["cpu", "ram", "disk", "last_seen"]);  // re-sorted at most every 2 s
const LIVE_RESORT_MS = 2000;

const SORT_VALUE = {
  online: (d) => (d.online ? 0 : 1),
  device_id: (d) => d.device_id,
  hostname: (d) => d.hostname ?? "",
  agent_version: (d) => d.agent_version ?? "",
  last_seen: (d) => -(d.last_seen ?? 0),
  cpu: (d) => -(d.last_payload?.cpu ?? -1),
  ram: (d) => -(d.last_payload?.ram ?? -1),
  disk: (d) => -(d.last_payload?.disk ?? -1),
  last_error: (d) => d.last_error ?? "",
};

export class FleetView {
  constructor(root, state, now) {
    Object.assign(this, { root, state, now });
    this.tbody = root.querySelector("#fleet tbody");
    this.counts = root.querySelector("#counts");
    this.empty = root.querySelector("#empty");
    this.rows = new Map();
    this.dirty = new Set();
    this.onScreen = new Set();   // rows near the viewport: only these get metric/text updates
    this.stale = new Set();      // off-screen rows whose details wait until they scroll into view
    this.observer = new IntersectionObserver((entries) => this.seen(entries), { rootMargin: "300px" });
    this.everything = true;
    this.orderStale = true;
    this.lastSort = 0;
    this.frame = 0;
    this.filter = { text: "", status: "all" };
    this.sort = { key: "device_id", dir: 1 };
    this.stats = { flushes: 0, lastFlushMs: 0, maxFlushMs: 0 };
    state.subscribe((ids) => this.invalidate(ids));
    this.wireControls();
    setInterval(() => this.invalidate(null, true), 1000);  // "last seen" keeps ticking
  }

  wireControls() {
    const text = this.root.querySelector("#filter");
    const status = this.root.querySelector("#status-filter");
    text.addEventListener("input", () => { this.filter.text = text.value.trim().toLowerCase(); this.refilter(); });
    status.addEventListener("change", () => { this.filter.status = status.value; this.refilter(); });
    for (const th of this.root.querySelectorAll("th[data-sort]")) {
      th.querySelector("button").addEventListener("click", () => this.sortBy(th.dataset.sort));
    }
    this.markSortHeader();
  }

  sortBy(key) {
    this.sort = { key, dir: this.sort.key === key ? -this.sort.dir : 1 };
    this.markSortHeader();
    this.orderStale = true;
    this.schedule();
  }

  markSortHeader() {
    for (const th of this.root.querySelectorAll("th[data-sort]")) {
      if (th.dataset.sort === this.sort.key) {
        th.setAttribute("aria-sort", this.sort.dir > 0 ? "ascending" : "descending");
      } else th.removeAttribute("aria-sort");
    }
  }

  refilter() { this.everything = true; this.schedule(); }

  invalidate(ids, timeOnly = false) {
    if (ids === null) this.everything = this.everything || !timeOnly;
    else for (const id of ids) this.dirty.add(id);
    if (timeOnly) this.tickDue = true;
    this.schedule();
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  flush() {
    this.frame = 0;
    const started = performance.now();
    const ids = this.everything ? [...this.state.devices.keys()] : [...this.dirty];
    if (this.everything) this.dropVanished();
    for (const id of ids) this.update(id);
    if (this.tickDue) this.tick();
    if (ids.length && LIVE_SORT_KEYS.has(this.sort.key) && started - this.lastSort > LIVE_RESORT_MS) {
      this.orderStale = true;
    } else if (ids.length && !LIVE_SORT_KEYS.has(this.sort.key) && this.sort.key !== "device_id") {
      this.orderStale = true;
    }
    if (this.orderStale) this.reorder(started);
    this.showCounts();
    this.dirty.clear();
    this.everything = this.tickDue = false;
    this.record(performance.now() - started);
  }

  record(ms) {
    this.stats.flushes += 1;
    this.stats.lastFlushMs = ms;
    this.stats.maxFlushMs = Math.max(this.stats.maxFlushMs, ms);
  }

  seen(entries) {
    for (const entry of entries) {
      const id = entry.target.dataset.deviceId;
      if (!entry.isIntersecting) { this.onScreen.delete(id); continue; }
      this.onScreen.add(id);
      if (this.stale.delete(id)) this.dirty.add(id);
    }
    this.schedule();
  }

  dropVanished() {
    for (const [id, row] of this.rows) {
      if (this.state.devices.has(id)) continue;
      this.observer.unobserve(row.tr);
      row.tr.remove();
      this.rows.delete(id);
    }
  }

  update(id) {
    const device = this.state.devices.get(id);
    if (!device) return;
    let row = this.rows.get(id);
    if (!row) {
      row = buildRow(id);
      this.rows.set(id, row);
      this.tbody.append(row.tr);
      this.observer.observe(row.tr);
      this.orderStale = true;
      fillDetails(row, device, this.now());
    }
    fillPresence(row, device);
    if (this.onScreen.has(id)) fillDetails(row, device, this.now());
    else this.stale.add(id);
    const hidden = !this.matches(device);
    if (row.tr.hidden !== hidden) row.tr.hidden = hidden;
  }

  tick() {
    const now = this.now();
    for (const id of this.onScreen) {
      const row = this.rows.get(id), device = this.state.devices.get(id);
      if (row && device && !row.tr.hidden) set(row, "seen", ago(device.last_seen, now));
    }
  }

  matches(d) {
    const { text, status } = this.filter;
    if (status === "online" && !d.online) return false;
    if (status === "offline" && d.online) return false;
    if (!text) return true;
    return [d.device_id, d.hostname, d.agent_version, d.last_error, d.platform]
      .some((field) => field && field.toLowerCase().includes(text));
  }

  reorder(started) {
    this.orderStale = false;
    this.lastSort = started;
    const value = SORT_VALUE[this.sort.key];
    const dir = this.sort.dir;
    const devices = [...this.state.devices.values()];
    devices.sort((a, b) => compare(value(a), value(b)) * dir || compare(a.device_id, b.device_id));
    const inPlace = devices.every((d, i) => this.tbody.rows[i] === this.rows.get(d.device_id)?.tr);
    if (inPlace) return;
    const fragment = document.createDocumentFragment();
    for (const d of devices) fragment.append(this.rows.get(d.device_id).tr);
    this.tbody.append(fragment);
  }

  showCounts() {
    const { online, offline, total } = this.state.counts();
    const shown = this.tbody.querySelectorAll("tr:not([hidden])").length;
    const text = `${online} online · ${offline} offline · ${total} devices` + (shown < total ? ` (${shown} shown)` : "");
    if (this.counts.textContent !== text) this.counts.textContent = text;
    this.empty.hidden = shown > 0 || total === 0;
  }
}

function compare(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

function buildRow(id) {
  const tr = document.createElement("tr");
  tr.dataset.deviceId = id;
  tr.innerHTML = `<td><span class="status"><span class="badge"></span><small></small></span></td>
    <td><a></a></td><td class="wide"></td><td class="wide"></td><td data-label="seen"></td>
    ${METRICS.map((m) => `<td data-label="${m}"><span class="metric"><span class="bar"><span class="fill"></span></span><span class="num"></span></span></td>`).join("")}
    <td class="err wide"></td>`;
  const cells = tr.children;
  const link = cells[1].firstElementChild;
  link.href = `#/device/${encodeURIComponent(id)}`;
  link.textContent = id;
  return {
    tr, last: {},
    badge: cells[0].querySelector(".badge"), since: cells[0].querySelector("small"),
    host: cells[2], version: cells[3], seen: cells[4], err: cells[8],
    fills: METRICS.map((_, i) => cells[5 + i].querySelector(".fill")),
    nums: METRICS.map((_, i) => cells[5 + i].querySelector(".num")),
  };
}

// Presence is rare and drives counts and filters: applied to every row, on or off screen.
function fillPresence(row, d) {
  const online = String(Boolean(d.online));
  if (row.tr.dataset.online !== online) row.tr.dataset.online = online;
  if (set(row, "badge", d.online ? "online" : "offline")) row.badge.className = `badge ${d.online ? "on" : "off"}`;
  const reason = d.presence_reason ? ` · ${d.presence_reason}` : "";
  set(row, "since", d.presence_since ? `since ${clock(d.presence_since)}${reason}` : reason.slice(3));
}

// Samples are frequent: applied only where the operator can see them.
function fillDetails(row, d, now) {
  set(row, "host", d.hostname ?? "–");
  set(row, "version", d.agent_version ?? "–");
  set(row, "seen", ago(d.last_seen, now));
  set(row, "err", d.last_error || "");
  if (row.err.title !== (d.last_error || "")) row.err.title = d.last_error || "";
  METRICS.forEach((metric, i) => fillMetric(row, i, d.last_payload?.[metric]));
}

function fillMetric(row, i, value) {
  const text = percent(value);
  if (row.last[`m${i}`] === text) return;
  row.last[`m${i}`] = text;
  row.nums[i].textContent = text;
  const fill = row.fills[i];
  fill.style.width = `${Math.max(0, Math.min(100, value ?? 0))}%`;
  fill.className = `fill${value >= 90 ? " crit" : value >= 75 ? " warn" : ""}`;
}

// Writes only what changed: untouched cells cost no style or layout work.
function set(row, key, text) {
  if (row.last[key] === text) return false;
  row.last[key] = text;
  row[key].textContent = text;
  return true;
}
