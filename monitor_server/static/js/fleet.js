// The fleet table: one row per device, updated in place; DOM work batched on animation frames.
// Ordering and filtering rules live in fleet-sort.js (pure, unit-tested with node --test).
import { ago, clock, count, percent } from "./format.js";
import { compareDevices, matches, nextSort, readViewState, resort, writeViewState } from "./fleet-sort.js";

const METRICS = ["cpu", "ram", "disk"];
const FULL_SORT_OVER = 0.1;  // more changed rows than this share of the fleet: one full sort instead

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
    this.order = [];             // device ids in sort order, matching the rows in the tbody
    this.frame = 0;
    const saved = readViewState(location.search);  // sort and filter survive a reload
    this.filter = { text: saved.filter.text.trim().toLowerCase(), status: saved.filter.status };
    this.sort = saved.sort;
    this.stats = { flushes: 0, lastFlushMs: 0, maxFlushMs: 0 };
    state.subscribe((ids) => this.invalidate(ids));
    this.wireControls();
    setInterval(() => this.invalidate(null, true), 1000);  // "last seen" keeps ticking
  }

  wireControls() {
    const text = this.root.querySelector("#filter");
    const status = this.root.querySelector("#status-filter");
    const saved = readViewState(location.search);
    text.value = saved.filter.text;
    status.value = saved.filter.status;
    this.typed = saved.filter.text;
    text.addEventListener("input", () => {
      this.typed = text.value;
      this.filter.text = text.value.trim().toLowerCase();
      this.refilter();
    });
    status.addEventListener("change", () => { this.filter.status = status.value; this.refilter(); });
    for (const th of this.root.querySelectorAll("th[data-sort]")) {
      th.querySelector("button").addEventListener("click", () => this.sortBy(th.dataset.sort));
    }
    this.markSortHeader();
  }

  sortBy(key) {
    this.sort = nextSort(this.sort, key);
    this.markSortHeader();
    this.remember();
    this.orderStale = true;
    this.schedule();
  }

  // Keeps sort and filter in the query string (the hash is the router's), without a history entry.
  remember() {
    const search = writeViewState(location.search, this.sort, { ...this.filter, text: this.typed });
    if (search !== location.search) history.replaceState(history.state, "", `${location.pathname}${search}${location.hash}`);
  }

  markSortHeader() {
    for (const th of this.root.querySelectorAll("th[data-sort]")) {
      if (th.dataset.sort === this.sort.key) {
        th.setAttribute("aria-sort", this.sort.dir > 0 ? "ascending" : "descending");
      } else th.removeAttribute("aria-sort");
    }
  }

  refilter() { this.remember(); this.everything = true; this.schedule(); }

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
    for (const id of this.everything ? [] : this.dirty) {
      if (!this.state.devices.has(id)) { this.everything = true; break; }  // a device gone: rebuild
    }
    const ids = this.everything ? [...this.state.devices.keys()] : [...this.dirty];
    if (this.everything) this.dropVanished();
    for (const id of ids) this.update(id);
    if (this.tickDue) this.tick();
    // Every change is put in its place in the same frame: rows are never shown out of order.
    if (this.orderStale || this.everything || ids.length > this.order.length * FULL_SORT_OVER) this.reorder();
    else if (ids.length) this.reposition(ids);
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
      fillDetails(row, device, this.now());
    }
    fillPresence(row, device);
    if (this.onScreen.has(id)) fillDetails(row, device, this.now());
    else this.stale.add(id);
    const hidden = !matches(device, this.filter);
    if (row.tr.hidden !== hidden) row.tr.hidden = hidden;
  }

  tick() {
    const now = this.now();
    for (const id of this.onScreen) {
      const row = this.rows.get(id), device = this.state.devices.get(id);
      if (row && device && !row.tr.hidden) set(row, "seen", ago(device.last_seen, now));
    }
  }

  // Sorts every row: on a new sort, a new filter, a snapshot, or many changes at once.
  reorder() {
    this.orderStale = false;
    const devices = [...this.state.devices.values()].sort(compareDevices(this.sort));
    this.order = devices.map((d) => d.device_id);
    const inPlace = this.order.every((id, i) => this.tbody.rows[i] === this.rows.get(id)?.tr);
    if (inPlace) return;
    const fragment = document.createDocumentFragment();
    for (const id of this.order) fragment.append(this.rows.get(id).tr);
    this.tbody.append(fragment);
  }

  // Moves only the changed rows to their new places (the rest of the table is already in order).
  reposition(ids) {
    const byDevice = compareDevices(this.sort);
    const devices = this.state.devices;
    const known = ids.filter((id) => devices.has(id) && this.rows.has(id));
    resort(this.order, known, (a, b) => byDevice(devices.get(a), devices.get(b)));
    const moved = new Set(known);
    // Last to first: each changed row goes before its successor, which is already in place.
    for (let i = this.order.length - 1; i >= 0; i -= 1) {
      const id = this.order[i];
      if (!moved.has(id)) continue;
      const tr = this.rows.get(id).tr;
      const next = i + 1 < this.order.length ? this.rows.get(this.order[i + 1]).tr : null;
      if (tr.nextElementSibling !== next) this.tbody.insertBefore(tr, next);
    }
  }

  showCounts() {
    const { online, offline, total } = this.state.counts();
    const shown = this.tbody.querySelectorAll("tr:not([hidden])").length;
    const text = `${online} online · ${offline} offline · ${count(total, "device")}` + (shown < total ? ` (${shown} shown)` : "");
    if (this.counts.textContent !== text) this.counts.textContent = text;
    this.empty.hidden = shown > 0 || total === 0;
  }
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
