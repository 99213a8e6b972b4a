// The alerts page's management: rules (threshold, offline, status), notifiers (webhook, apprise) and
// active silences. Everyone sees the lists the hub lets them read (rules, silences; notifiers for
// admins); admins get the create forms, edit (a rule, with the notifiers it goes to: PATCH) and
// delete buttons, operators "end now" on silences. The hub enforces the roles; this only hides
// what would be refused. Bodies and summaries: alerts-admin-state.js.
import { api } from "./api.js";
import {
  notifierBody, ruleBody, ruleFormValues, ruleSummary, ruleUpdateBody, silenceSummary,
} from "./alerts-admin-state.js";
import { attempt, button, h, when } from "./dom.js";

const field = (label, input) => h("label", {}, `${label} `, input);
const input = (name, props = {}) => h("input", { name, autocomplete: "off", ...props });
const select = (name, options) => h("select", { name }, ...options.map((o) => h("option", { value: o, text: o })));
const values = (form) => {
  const data = new FormData(form);
  return { ...Object.fromEntries(data.entries()), notifiers: data.getAll("notifiers") };
};

export class AlertsAdmin {
  constructor(parent, role) {
    Object.assign(this, { role });
    this.editing = null;  // the rule the rule form edits (PATCH), or null: it creates one
    this.status = h("p", { id: "alerts-admin-status", className: "status", role: "status" });
    this.rules = h("ul", { id: "alert-rules", className: "plain-list" });
    this.notifiers = h("ul", { id: "alert-notifiers", className: "plain-list" });
    this.silences = h("ul", { id: "alert-silences", className: "plain-list" });
    this.ruleForm = this.makeRuleForm();
    this.notifierForm = this.makeNotifierForm();
    this.notifierBlock = h("div", {}, h("h2", { text: "Notifiers" }), this.notifiers, this.notifierForm);
    parent.append(h(
      "section", { id: "alerts-admin", "aria-label": "Rules, notifiers and silences" },
      h("h2", { text: "Rules" }), this.rules, this.ruleForm,
      this.notifierBlock,
      h("h2", { text: "Silences" }), this.silences,
      this.status,
    ));
  }

  makeRuleForm() {
    this.ruleSubmit = h("button", { type: "submit", text: "Create rule" });
    this.ruleCancel = button("Cancel", () => this.stopEditing(), { hidden: true });
    this.routing = h("fieldset", { id: "rule-notifiers", className: "rule-notifiers" });
    const form = h(
      "form", { id: "rule-form", className: "inline-form" },
      field("Kind", select("kind", ["threshold", "offline", "status"])), field("Name", input("name", { required: true })),
      field("Metric", input("metric", { placeholder: "cpu" })), field("Op", select("op", [">", ">=", "<", "<=", "==", "!="])),
      field("Value", input("value", { inputMode: "decimal", size: 6 })),
      field("Clear value", input("clear_value", { inputMode: "decimal", size: 6 })),
      field("For (s)", input("for", { inputMode: "decimal", size: 5, value: "0" })),
      field("Severity", select("severity", ["warning", "critical", "info"])),
      field("Tags", input("tags", { placeholder: "web, db" })), field("Devices", input("devices")),
      this.routing, this.ruleSubmit, this.ruleCancel,
    );
    form.onsubmit = (event) => { event.preventDefault(); this.write(() => this.saveRule(form)); };
    return form;
  }

  // The notifiers a rule may go to, as checkboxes (none ticked: every notifier); ticked ones stay.
  renderRouting(notifiers) {
    const ticked = new Set([...this.routing.querySelectorAll("input:checked")].map((box) => box.value));
    this.routing.replaceChildren(
      h("legend", { text: "Notifiers (none ticked: all)" }),
      ...notifiers.map((n) => h("label", { className: "check" },
        h("input", { type: "checkbox", name: "notifiers", value: String(n.id), checked: ticked.has(String(n.id)) }),
        ` ${n.name}`)),
    );
    this.routing.hidden = !notifiers.length;
  }

  // The rule form takes the rule's values; its button saves them (PATCH) until saved or cancelled.
  edit(rule) {
    const form = this.ruleForm;
    const v = ruleFormValues(rule);
    for (const name of ["kind", "name", "metric", "op", "value", "clear_value", "for", "severity", "tags", "devices"]) {
      form.elements[name].value = v[name];
    }
    for (const box of this.routing.querySelectorAll("input")) box.checked = v.notifiers.includes(box.value);
    this.editing = rule;
    this.ruleSubmit.textContent = "Save rule";
    this.ruleCancel.hidden = false;
    this.status.textContent = `Editing rule ${rule.name}.`;
    this.status.classList.remove("error");
    form.elements.name.focus();
  }

  stopEditing() {
    this.editing = null;
    this.ruleForm.reset();
    for (const box of this.routing.querySelectorAll("input")) box.checked = false;
    this.ruleSubmit.textContent = "Create rule";
    this.ruleCancel.hidden = true;
  }

  async saveRule(form) {
    if (!this.editing) return this.createRule(form);
    const saved = await api.updateAlertRule(this.editing.id, ruleUpdateBody(values(form)));
    this.stopEditing();
    return `Rule ${saved.name} saved.`;
  }

  makeNotifierForm() {
    const form = h(
      "form", { id: "notifier-form", className: "inline-form" },
      field("Kind", select("kind", ["webhook", "apprise"])), field("Name", input("name", { required: true })),
      field("URL", input("url", { required: true, placeholder: "http(s)://... or ntfy://topic", size: 40 })),
      h("button", { type: "submit", text: "Create notifier" }),
    );
    form.onsubmit = (event) => { event.preventDefault(); this.write(() => this.createNotifier(form)); };
    return form;
  }

  async createRule(form) {
    const made = await api.createAlertRule(ruleBody(values(form)));
    this.stopEditing();
    return `Rule ${made.name} created.`;
  }

  async createNotifier(form) {
    const made = await api.createNotifier(notifierBody(values(form)));
    form.reset();
    return `Notifier ${made.name} created (${made.url}).`;
  }

  async write(work) {
    if (await attempt(this.status, work)) await this.refresh();
  }

  async refresh() {
    const admin = this.role.may("admin");
    const operator = this.role.may("operator");
    this.ruleForm.hidden = !admin;
    this.notifierForm.hidden = !admin;
    this.notifierBlock.hidden = !admin;  // GET /notifiers is the admin's
    const [{ rules }, { silences }, notifiers] = await Promise.all([
      api.alertRules(), api.silences(), admin ? api.notifiers() : { notifiers: [] },
    ]);
    if (!admin && this.editing) this.stopEditing();
    this.renderRouting(notifiers.notifiers);
    const names = new Map(notifiers.notifiers.map((n) => [n.id, n.name]));
    this.rules.replaceChildren(...this.items(rules, (r) => [
      h("strong", { text: r.name }), ` · ${ruleSummary(r, names)} `,
      admin ? button("Edit", () => this.edit(r), { "aria-label": `Edit rule ${r.name}` }) : "",
      admin ? " " : "",
      admin ? button("Delete", () => this.write(async () => { await api.deleteAlertRule(r.id); return `Rule ${r.name} deleted.`; }),
        { "aria-label": `Delete rule ${r.name}` }) : "",
    ], "No rules."));
    this.notifiers.replaceChildren(...this.items(notifiers.notifiers, (n) => [
      h("strong", { text: n.name }), ` · ${n.kind} · `, h("code", { text: n.url }), " ",
      button("Delete", () => this.write(async () => { await api.deleteNotifier(n.id); return `Notifier ${n.name} deleted.`; }),
        { "aria-label": `Delete notifier ${n.name}` }),
    ], "No notifiers."));
    this.silences.replaceChildren(...this.items(silences, (s) => [
      `${silenceSummary(s)} · until ${when(s.ends_at)} `,
      operator ? button("End now", () => this.write(async () => { await api.endSilence(s.id); return "Silence ended."; }),
        { "aria-label": `End silence ${s.id}` }) : "",
    ], "No active silences."));
  }

  items(list, render, empty) {
    if (!list.length) return [h("li", { className: "muted", text: empty })];
    return list.map((item) => {
      const li = h("li", {}, ...render(item));
      li.dataset.id = String(item.id);
      return li;
    });
  }
}
