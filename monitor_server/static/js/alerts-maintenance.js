// Maintenance on the device page: "maintenance until <time>" with a comment is a silence matching
// the device alone (POST /silences); the page shows it while active and lets an operator end it
// early (DELETE /silences/{id}). Viewers see it without the form and button; the hub enforces
// the roles either way. Bodies and the choice of silences: alerts-maintenance-state.js.
import { api } from "./api.js";
import { localInput, maintenanceBody, maintenanceOf } from "./alerts-maintenance-state.js";
import { attempt, button, h, when } from "./dom.js";

const DEFAULT_HOURS = 2;

export class Maintenance {
  // `changed()` is called after a start or an end (the alerts list reloads its silenced flags).
  constructor(role, changed) {
    Object.assign(this, { role, changed });
    this.deviceId = null;
    this.silences = [];
    this.list = h("ul", { id: "maintenance-list", className: "plain-list" });
    this.status = h("p", { id: "maintenance-status", className: "status", role: "status" });
    this.until = h("input", { name: "until", type: "datetime-local", required: true });
    this.comment = h("input", { name: "comment", autocomplete: "off", placeholder: "kernel upgrade", maxLength: 500 });
    this.form = h(
      "form", { id: "maintenance-form", className: "inline-form" },
      h("label", {}, "Maintenance until ", this.until),
      h("label", {}, "Comment ", this.comment),
      h("button", { type: "submit", text: "Start maintenance" }),
    );
    this.form.onsubmit = (event) => { event.preventDefault(); this.write(() => this.start()); };
    this.element = h(
      "div", { id: "device-maintenance", className: "maintenance" },
      h("h3", { text: "Maintenance" }), this.list, this.form, this.status,
    );
    role.onChange(() => this.render());
  }

  // The device page shows `deviceId`: its maintenance as the hub has it now.
  async show(deviceId) {
    if (deviceId !== this.deviceId) {
      this.deviceId = deviceId;
      this.silences = [];
      this.status.textContent = "";
      this.comment.value = "";
      this.until.value = localInput(Date.now() + DEFAULT_HOURS * 3600_000);
      this.render();
    }
    await this.load();
  }

  forget() { this.deviceId = null; }

  async load() {
    const id = this.deviceId;
    const { silences } = await api.silences();
    if (id !== this.deviceId) return;
    this.silences = silences;
    this.render();
  }

  render() {
    if (!this.deviceId) return;
    const operator = this.role.may("operator");
    this.form.hidden = !operator;
    const active = maintenanceOf(this.silences, this.deviceId, Date.now());
    if (!active.length) {
      this.list.replaceChildren(h("li", { className: "muted", text: "Not under maintenance." }));
      return;
    }
    this.list.replaceChildren(...active.map((s) => h(
      "li", { className: "maintenance-item" },
      h("strong", { text: `Under maintenance until ${when(s.ends_at)}` }),
      ` · ${s.comment}${s.created_by ? ` · by ${s.created_by}` : ""} `,
      operator ? button("End maintenance", () => this.write(() => this.end(s)), { "aria-label": `End maintenance ${s.id}` }) : "",
    )));
  }

  async start() {
    const made = await api.silence(maintenanceBody(this.deviceId, this.until.value, this.comment.value, Date.now()));
    this.comment.value = "";
    return `Maintenance until ${when(made.ends_at)}.`;
  }

  async end(s) {
    await api.endSilence(s.id);
    return "Maintenance ended.";
  }

  async write(work) {
    if (await attempt(this.status, work)) {
      await this.load();
      await this.changed();
    }
  }
}
