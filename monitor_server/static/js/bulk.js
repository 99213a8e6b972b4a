// The fleet's bulk bar: queue one command on every ticked device (POST /commands/bulk), add or
// remove tags on them, and follow the bulk command's progress. The progress is read again
// (GET /commands/bulk/{id}) whenever a command event of one of its devices arrives, so the counts
// move as agents acknowledge.
import { api } from "./api.js";
import { finished, parseTags, progressText } from "./bulk-state.js";
import { parseArgs } from "./json-args.js";

const REFRESH_MS = 250;  // at most this often while command events stream in
// Also read again this long after the last read while parts are open: events that arrived before
// the bulk request returned (fast agents) were not yet known to be about it.
const SAFETY_MS = 2000;
const ROWS = 200;  // devices listed in the progress table (failed and waiting ones first); counts cover all

export class BulkPanel {
  constructor(form, progress, fleetView, state, role) {
    Object.assign(this, { form, progress, fleetView, state, role });
    this.count = form.querySelector("#bulk-count");
    this.error = form.querySelector("#bulk-error");
    this.buttons = [...form.querySelectorAll("button")];
    this.bulk = null;  // the bulk command being followed: { id, devices: Set }
    this.timer = 0;
    fleetView.onSelection = () => this.update();
    role.onChange(() => this.update());  // the role's apply() re-enables every control
    form.addEventListener("submit", (event) => { event.preventDefault(); this.send(); });
    form.querySelector("#bulk-tag-add").addEventListener("click", () => this.retag(true));
    form.querySelector("#bulk-tag-remove").addEventListener("click", () => this.retag(false));
    form.querySelector("#bulk-pick-shown").addEventListener("click", () => {
      fleetView.selection.setAll(fleetView.shown, true);
      fleetView.selectionChanged();
    });
    form.querySelector("#bulk-clear").addEventListener("click", () => {
      fleetView.selection.clear();
      fleetView.selectionChanged();
    });
    progress.querySelector("#bulk-close").addEventListener("click", () => { this.bulk = null; progress.hidden = true; });
    state.subscribe((ids, events) => this.heard(events));
    this.update();
  }

  update() {
    const n = this.fleetView.selection.size;
    this.count.textContent = n ? `${n} selected` : "Tick devices to act on several at once.";
    this.form.toggleAttribute("data-empty", n === 0);  // only the hint and "Select all shown" then
    const allowed = this.role.may("operator");
    for (const button of this.buttons) button.disabled = !allowed || n === 0;
    this.form.querySelector("#bulk-clear").disabled = n === 0;
    this.form.querySelector("#bulk-pick-shown").disabled = !allowed;
  }

  async send() {
    const devices = this.fleetView.selection.list();
    const command = this.form.querySelector("#bulk-command").value.trim();
    const args = this.parseArgs();
    if (!devices.length || !command || args === undefined) return;
    this.error.textContent = "";
    try {
      const summary = await api.sendBulk({ command, args, devices });
      this.follow(summary);
    } catch (error) {
      this.error.textContent = error.message;
    }
  }

  parseArgs() {
    const args = parseArgs(this.form.querySelector("#bulk-args").value);
    if (args === undefined) this.error.textContent = "Arguments must be a JSON object";
    return args;
  }

  // Adds (or removes) the typed tags on each ticked device: its operators' tags, PATCHed one by one.
  async retag(add) {
    const { tags, bad } = parseTags(this.form.querySelector("#bulk-tags").value);
    if (bad.length) { this.error.textContent = `Not a tag: ${bad.join(", ")} (letters, digits, ._:/=-)`; return; }
    if (!tags.length) return;
    this.error.textContent = "";
    for (const id of this.fleetView.selection.list()) {
      const d = this.state.devices.get(id);
      const agent = new Set(d?.agent_tags ?? []);
      const own = new Set((d?.tags ?? []).filter((t) => !agent.has(t)));
      for (const tag of tags) if (add) own.add(tag); else own.delete(tag);
      try {
        await api.updateDevice(id, { tags: [...own] });
      } catch (error) {
        this.error.textContent = `${id}: ${error.message}`;
        return;
      }
    }
  }

  follow(summary) {
    this.bulk = { id: summary.id, devices: new Set(summary.commands.map((c) => c.device_id)) };
    this.progress.hidden = false;
    this.show(summary);
    this.later(REFRESH_MS);  // acks may have been pushed before this answer arrived
  }

  heard(events) {
    if (!this.bulk || !events.some((e) => e.type === "command" && this.bulk.devices.has(e.device_id))) return;
    this.later(REFRESH_MS);
  }

  later(ms) {
    if (!this.timer) this.timer = setTimeout(() => this.refresh(), ms);
  }

  async refresh() {
    this.timer = 0;
    if (!this.bulk) return;
    const id = this.bulk.id;
    const summary = await api.bulk(id, ROWS).catch(() => null);
    if (summary && this.bulk?.id === id) this.show(summary);
  }

  show(summary) {
    this.progress.querySelector("#bulk-title").textContent = `Bulk command: ${summary.command ?? ""}`;
    const bar = this.progress.querySelector("#bulk-bar");
    bar.max = summary.total || 1;
    bar.value = summary.total - summary.counts.pending - summary.counts.delivered;
    const text = progressText(summary) + (finished(summary) ? " · done" : "");
    this.progress.querySelector("#bulk-summary").textContent = text;
    const rows = summary.commands.map((c) => {
      const tr = document.createElement("tr");
      const outcome = c.status === "acked" && c.success === false ? "failed" : c.status;
      for (const text of [c.device_id, outcome, c.message ?? ""]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      tr.dataset.outcome = outcome;
      return tr;
    });
    if (summary.truncated) rows.push(moreRow(summary.total - summary.commands.length));
    this.progress.querySelector("#bulk-results tbody").replaceChildren(...rows);
    if (!finished(summary)) this.later(SAFETY_MS);
  }
}

// The last row of a limited table: how many devices it does not list (all counted above).
function moreRow(hidden) {
  const tr = document.createElement("tr");
  const td = document.createElement("td");
  td.colSpan = 3;
  td.className = "muted";
  td.textContent = `and ${hidden} more (counted above; failed and waiting ones are listed first)`;
  tr.append(td);
  return tr;
}
