// The alerts page (#/alerts), the fleet's firing badges' source and the device page's alerts panel:
// one AlertsState (alerts-state.js) fed by GET /alerts and the live `alert` events of /ws/ui.
import { AlertsAdmin } from "./alerts-admin.js";
import { Maintenance } from "./alerts-maintenance.js";
import { api } from "./api.js";
import { AlertsState, silenceBody } from "./alerts-state.js";
import { button, h, row, when } from "./dom.js";
import { decimal } from "./format.js";

const value = (v) => (v == null ? "–" : decimal(v));
const stateText = (a) => a.state + (a.silenced ? " · silenced" : "");
const deviceLink = (id) => h("a", { href: `#/device/${encodeURIComponent(id)}`, text: id });

export class Alerts {
  constructor(root, role) {
    Object.assign(this, { root, role });
    this.state = new AlertsState();
    this.tbody = root.querySelector("#alerts tbody");
    this.counts = root.querySelector("#alerts-counts");
    this.empty = root.querySelector("#alerts-empty");
    this.status = root.querySelector("#silence-status");
    this.navCount = document.querySelector("#alerts-nav-count");
    this.admin = new AlertsAdmin(root, role);
    role.onChange(() => { if (!root.hidden) this.refreshAdmin(); });
    this.devicePanel = null;  // { list, deviceId } while a device page shows its alerts
    // The device page's maintenance (a silence of the device alone), under its alerts.
    this.maintenance = new Maintenance(role, () => this.reload());
    this.state.subscribe((ids) => this.changed(ids));
  }

  // After each (re)connected snapshot: the list as the hub has it now.
  async reload() {
    this.state.hold();
    try {
      const { alerts } = await api.alerts();
      this.state.reset(alerts);
    } finally {
      this.state.done();
    }
  }

  apply(events) { this.state.apply(events); }

  changed(ids) {
    const { firing, pending } = this.state.counts();
    this.navCount.textContent = firing ? String(firing) : "";
    this.navCount.hidden = !firing;
    this.navCount.parentElement.setAttribute("aria-label", `Alerts: ${firing} firing, ${pending} pending`);
    if (!this.root.hidden) this.render();
    if (this.devicePanel && ids.has(this.devicePanel.deviceId)) this.renderDevice();
  }

  show() { this.root.hidden = false; this.render(); this.refreshAdmin(); }

  refreshAdmin() { this.admin.refresh().catch((error) => { this.admin.status.textContent = error.message; }); }
  hide() { this.root.hidden = true; }

  render() {
    const alerts = this.state.list();
    const { firing, pending, silenced } = this.state.counts();
    this.counts.textContent = `${firing} firing · ${pending} pending · ${silenced} silenced`;
    this.empty.hidden = alerts.length > 0;
    this.tbody.replaceChildren(...alerts.map((a) => this.alertRow(a)));
  }

  alertRow(a) {
    const actions = this.role.may("operator")
      ? button("Silence", () => this.silence(a), { "aria-label": `Silence ${a.rule} on ${a.device_id}` })
      : "";
    const tr = row([deviceLink(a.device_id), a.rule, a.severity, stateText(a), when(a.since), value(a.value), actions]);
    tr.dataset.state = a.state;
    tr.dataset.deviceId = a.device_id;
    tr.dataset.rule = a.rule;
    if (a.silenced) tr.dataset.silenced = "true";
    return tr;
  }

  // POST /silences for this alert's device and rule, for the chosen time, then the list again (silenced).
  async silence(a) {
    const form = this.root.querySelector("#silence-options");
    const seconds = Number(form.elements.duration.value);
    const comment = form.elements.comment.value.trim() || `silenced from the dashboard`;
    this.status.classList.remove("error");
    try {
      const made = await api.silence(silenceBody(a, seconds, comment, Date.now()));
      this.status.textContent = `Silenced ${a.rule} on ${a.device_id} until ${when(made.ends_at)}.`;
      await this.reload();
    } catch (error) {
      this.status.textContent = error.message;
      this.status.classList.add("error");
    }
  }

  // The device page's panel: that device's active alerts, kept live until `forget`.
  watchDevice(list, deviceId) {
    this.devicePanel = { list, deviceId };
    if (this.maintenance.element.previousElementSibling !== list) list.after(this.maintenance.element);
    this.maintenance.show(deviceId).catch((error) => { this.maintenance.status.textContent = error.message; });
    this.renderDevice();
  }

  forgetDevice() { this.devicePanel = null; this.maintenance.forget(); }

  renderDevice() {
    const { list, deviceId } = this.devicePanel;
    const alerts = this.state.list(deviceId);
    if (!alerts.length) {
      list.replaceChildren(h("li", { className: "muted", text: "No active alerts." }));
      return;
    }
    list.replaceChildren(...alerts.map((a) => h(
      "li", { className: `alert-item ${a.state}` },
      h("strong", { text: a.rule }), ` · ${a.severity} · ${stateText(a)} since ${when(a.since)} · value ${value(a.value)}`,
    )));
  }

}
