// The fleet table, virtualized: the sorted, filtered list of every device is kept in memory, and only
// the rows in or near the viewport exist in the DOM (two padding rows stand in for the others). DOM
// work is batched on animation frames. Ordering and filtering rules live in fleet-sort.js, the
// scroll arithmetic in fleet-window.js (both pure, unit-tested with node --test).
import { ago, clock, count, percent } from "./format.js";
import { DEFAULT_SORT, compareKeyed, matches, nextSort, readViewState, resort, sortValue, writeViewState } from "./fleet-sort.js";
import { rowWindow } from "./fleet-window.js";
import { Selection, tagCounts } from "./bulk-state.js";

const METRICS = ["cpu", "ram", "disk"];
const FULL_SORT_OVER = 0.1;  // more changed rows than this share of the fleet: one full sort instead
const OVERSCAN = 8;          // rows rendered above and below the viewport, so a scroll shows no gap
const ROW_HEIGHT_GUESS = 45; // px, until a rendered row has been measured
const SPARE_ROWS = 64;       // row elements kept for reuse after scrolling out of view

export class FleetView {
  constructor(root, state, now) {
    Object.assign(this, { root, state, now });
    this.table = root.querySelector("#fleet");
    this.tbody = this.table.tBodies[0];
    this.padTop = root.querySelector("#fleet-pad-top");
    this.padBottom = root.querySelector("#fleet-pad-bottom");
    this.counts = root.querySelector("#counts");
    this.empty = root.querySelector("#empty");
    this.rows = new Map();       // device id -> rendered row (only rows in the window)
    this.spare = [];             // rows scrolled out, to be rebound to another device
    this.dirty = new Set();
    this.everything = true;
    this.orderStale = true;
    this.filterStale = false;
    this.order = [];             // every device id, in sort order
    this.keyed = new Map();      // device id -> { id, value }: the sort value `order` was built with
    this.shown = [];             // the ids of `order` that pass the filter
    this.rowHeight = 0;          // measured; 0: measure again (after a resize)
    this.frame = 0;
    const saved = readViewState(location.search);  // sort and filter survive a reload
    this.filter = { text: saved.filter.text.trim().toLowerCase(), status: saved.filter.status, tag: saved.filter.tag };
    this.selection = new Selection();  // ticked rows, for bulk commands and tagging (bulk.js)
    this.onSelection = () => {};
    this.firingOf = () => 0;     // device id -> how many of its alerts fire (main.js: alerts.js)
    this.tagList = "";
    this.sort = saved.sort;
    this.stats = { flushes: 0, lastFlushMs: 0, maxFlushMs: 0 };
    state.subscribe((ids) => this.invalidate(ids));
    this.wireControls();
    addEventListener("scroll", () => this.schedule(), { passive: true });
    addEventListener("resize", () => { this.rowHeight = 0; this.schedule(); });
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
    this.tagSelect = this.root.querySelector("#tag-filter");
    this.tagSelect.addEventListener("change", () => { this.filter.tag = this.tagSelect.value; this.refilter(); });
    this.showTags();
    this.pickAll = this.root.querySelector("#pick-shown");
    this.pickAll.addEventListener("change", () => {
      this.selection.setAll(this.shown, this.pickAll.checked);
      this.selectionChanged();
    });
    this.tbody.addEventListener("change", (event) => {
      const box = event.target;
      if (!(box instanceof HTMLInputElement) || !box.classList.contains("pick")) return;
      this.selection.set(box.closest("tr").dataset.deviceId, box.checked);
      this.selectionChanged();
    });
    for (const th of this.root.querySelectorAll("th[data-sort]")) {
      th.querySelector("button").addEventListener("click", () => this.sortBy(th.dataset.sort));
    }
    // Devices with the same tags side by side (sorted by their tags; untagged last).
    this.groupButton = this.root.querySelector("#group-by-tag");
    this.groupButton.addEventListener("click", () => this.sortBy(this.sort.key === "tags" ? DEFAULT_SORT.key : "tags"));
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
    this.groupButton?.setAttribute("aria-pressed", String(this.sort.key === "tags"));
    for (const th of this.root.querySelectorAll("th[data-sort]")) {
      if (th.dataset.sort === this.sort.key) {
        th.setAttribute("aria-sort", this.sort.dir > 0 ? "ascending" : "descending");
      } else th.removeAttribute("aria-sort");
    }
  }

  refilter() { this.remember(); this.filterStale = true; this.schedule(); }

  // Ticks follow the selection (rows are reused while scrolling); the bulk panel hears of it.
  selectionChanged() {
    for (const [id, row] of this.rows) row.pick.checked = this.selection.ids.has(id);
    this.pickAll.checked = this.selection.covers(this.shown);
    this.onSelection(this.selection);
  }

  // The tag filter offers every tag of the fleet, with how many devices carry it.
  showTags() {
    const counts = tagCounts(this.state.devices.values());
    const key = counts.map(([tag, n]) => `${tag}:${n}`).join(",");
    if (key === this.tagList) return;
    this.tagList = key;
    const chosen = this.filter.tag;
    const options = [new Option("any", "")];
    for (const [tag, n] of counts) options.push(new Option(`${tag} (${n})`, tag));
    if (chosen && !counts.some(([tag]) => tag === chosen)) options.push(new Option(`${chosen} (0)`, chosen));
    this.tagSelect.replaceChildren(...options);
    this.tagSelect.value = chosen;
  }

  afterArrange() {
    this.showTags();
    const before = this.selection.size;
    this.selection.prune(this.state.devices);  // a removed device is no longer selected
    this.pickAll.checked = this.selection.covers(this.shown);
    if (this.selection.size !== before) this.onSelection(this.selection);
  }

  invalidate(ids, timeOnly = false) {
    if (ids === null) this.everything = this.everything || !timeOnly;
    else for (const id of ids) this.dirty.add(id);
    if (timeOnly) this.tickDue = true;
    this.schedule();
  }

  // The router calls this when the fleet view is shown again (nothing is drawn while it is hidden).
  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  flush() {
    this.frame = 0;
    if (this.root.hidden) return;  // changes stay pending until the view is shown
    const started = performance.now();
    const changed = this.everything || this.orderStale || this.filterStale || this.dirty.size > 0;
    if (changed) this.arrange();
    this.render();
    if (changed || this.tickDue) this.showCounts();
    if (changed) this.afterArrange();
    this.dirty.clear();
    this.everything = this.tickDue = this.filterStale = false;
    this.record(performance.now() - started);
  }

  // Brings `order` and `shown` up to date: every change is in its place in the frame it is drawn.
  arrange() {
    const devices = this.state.devices;
    if (!this.everything) {
      for (const id of this.dirty) if (!devices.has(id)) { this.everything = true; break; }  // one removed
    }
    const value = sortValue(this.sort), byKey = compareKeyed(this.sort.dir);
    // Only a device whose sort value changed can move (ties are broken by id, which never changes):
    // sorted by name, a stream of samples moves nothing.
    const moved = [];
    if (!this.orderStale && !this.everything) {
      for (const id of this.dirty) {
        const v = value(devices.get(id));
        if (this.keyed.get(id)?.value !== v) {
          moved.push(id);
          this.keyed.set(id, { id, value: v });
        }
      }
    }
    if (this.orderStale || this.everything || moved.length > this.order.length * FULL_SORT_OVER) {
      this.orderStale = false;
      const keyed = [...devices.values()].map((d) => ({ id: d.device_id, value: value(d) })).sort(byKey);
      this.keyed = new Map(keyed.map((k) => [k.id, k]));
      this.order = keyed.map((k) => k.id);
    } else if (moved.length) {
      const keys = this.keyed;
      resort(this.order, moved, (a, b) => byKey(keys.get(a), keys.get(b)));
    }
    const { text, status, tag } = this.filter;
    this.shown = text || tag || status !== "all"
      ? this.order.filter((id) => matches(devices.get(id), this.filter)) : this.order;
  }

  // Puts the rows of the window in the tbody, in order, and sizes the padding rows around them.
  render() {
    const height = this.rowHeight || ROW_HEIGHT_GUESS;
    const listTop = this.padTop.getBoundingClientRect().top;  // where the list's first row starts
    const win = rowWindow({
      count: this.shown.length, rowHeight: height, listTop, viewHeight: innerHeight, overscan: OVERSCAN,
    });
    const ids = this.shown.slice(win.first, win.last);
    const wanted = new Set(ids);
    for (const [id, row] of this.rows) {
      if (wanted.has(id)) continue;
      row.tr.remove();
      this.rows.delete(id);
      if (this.spare.length < SPARE_ROWS) this.spare.push(row);
    }
    const now = this.now();
    let next = null;  // last to first: each row goes before its successor, already in place
    for (let i = ids.length - 1; i >= 0; i -= 1) {
      const id = ids[i], device = this.state.devices.get(id);
      let row = this.rows.get(id);
      if (!row) {
        row = bind(this.spare.pop() ?? buildRow(), id, this.selection);
        this.rows.set(id, row);
        fill(row, device, now);
      } else if (this.everything || this.dirty.has(id)) fill(row, device, now);
      else if (this.tickDue) set(row, "seen", ago(device.last_seen, now));
      fillFiring(row, this.firingOf(id));
      row.tr.setAttribute("aria-rowindex", String(win.first + i + 2));  // the header is row 1
      if (row.tr.nextElementSibling !== next || row.tr.parentNode !== this.tbody) this.tbody.insertBefore(row.tr, next);
      next = row.tr;
    }
    setHeight(this.padTop, win.padTop);
    setHeight(this.padBottom, win.padBottom);
    this.table.setAttribute("aria-rowcount", String(this.shown.length + 1));
    if (!this.rowHeight && ids.length) this.measure();
  }

  // One rendered row's height (the stylesheet makes them all equal); a change re-renders the window.
  measure() {
    const height = this.tbody.rows[0].getBoundingClientRect().height;
    if (height > 0) {
      this.rowHeight = height;
      this.schedule();
    }
  }

  record(ms) {
    this.stats.flushes += 1;
    this.stats.lastFlushMs = ms;
    this.stats.maxFlushMs = Math.max(this.stats.maxFlushMs, ms);
  }

  showCounts() {
    const { online, offline, total } = this.state.counts();
    const shown = this.shown.length;
    const text = `${online} online · ${offline} offline · ${count(total, "device")}` + (shown < total ? ` (${shown} shown)` : "");
    if (this.counts.textContent !== text) this.counts.textContent = text;
    this.empty.hidden = shown > 0 || total === 0;
  }
}

function setHeight(padRow, px) {
  const value = String(Math.round(px));
  if (padRow.dataset.height === value) return;
  padRow.dataset.height = value;
  padRow.firstElementChild.style.height = `${value}px`;
}

function buildRow() {
  const tr = document.createElement("tr");
  tr.innerHTML = `<td class="pick"><input type="checkbox" class="pick"></td>
    <td><span class="status"><span class="badge"></span><small></small></span></td>
    <td class="device"><a></a><small class="id"></small><span class="firing" hidden></span><span class="tags"></span></td><td class="wide"></td><td class="wide"></td><td data-label="seen"></td>
    ${METRICS.map((m) => `<td data-label="${m}"><span class="metric"><span class="bar"><span class="fill"></span></span><span class="num"></span></span></td>`).join("")}
    <td class="err wide"></td>`;
  const cells = [...tr.children].slice(1);  // after the selection box
  return {
    tr, last: {}, link: cells[1].firstElementChild, pick: tr.querySelector("input.pick"),
    id: cells[1].querySelector(".id"), firing: cells[1].querySelector(".firing"), tags: cells[1].querySelector(".tags"),
    badge: cells[0].querySelector(".badge"), since: cells[0].querySelector("small"),
    host: cells[2], version: cells[3], seen: cells[4], err: cells[8],
    fills: METRICS.map((_, i) => cells[5 + i].querySelector(".fill")),
    nums: METRICS.map((_, i) => cells[5 + i].querySelector(".num")),
  };
}

// A row element (new or scrolled out) now shows this device; what it showed before is forgotten.
function bind(row, id, selection) {
  row.tr.dataset.deviceId = id;
  row.link.href = `#/device/${encodeURIComponent(id)}`;
  row.pick.checked = selection.ids.has(id);
  row.pick.setAttribute("aria-label", `Select ${id}`);
  row.last = {};
  return row;
}

function fill(row, d, now) {
  fillPresence(row, d);
  fillDetails(row, d, now);
}

function fillPresence(row, d) {
  const online = String(Boolean(d.online));
  if (row.tr.dataset.online !== online) row.tr.dataset.online = online;
  if (set(row, "badge", d.online ? "online" : "offline")) row.badge.className = `badge ${d.online ? "on" : "off"}`;
  const reason = d.presence_reason ? ` · ${d.presence_reason}` : "";
  set(row, "since", d.presence_since ? `since ${clock(d.presence_since)}${reason}` : reason.slice(3));
}

// A badge beside the name while some of the device's alerts fire (alerts.js keeps them).
function fillFiring(row, n) {
  if (!set(row, "firing", n ? `${n} firing` : "")) return;
  row.firing.hidden = !n;
  if (n) row.firing.title = `${n} alert${n === 1 ? "" : "s"} firing: see Alerts`;
}

// The display name (the id beside it, smaller) or the id, then the device's tags.
function fillName(row, d) {
  set(row, "link", d.name || d.device_id);
  set(row, "id", d.name ? d.device_id : "");
  set(row, "tags", (d.tags ?? []).join(" · "));
}

function fillDetails(row, d, now) {
  fillName(row, d);
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
