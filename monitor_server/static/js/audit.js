// Admin page: the audit log. Who did what to what, from which address, when; newest first.
import { api } from "./api.js";
import { h, row, when } from "./dom.js";

export class AuditView {
  constructor(root) {
    this.root = root;
    this.tbody = root.querySelector("#audit tbody");
    this.form = root.querySelector("#audit-form");
    this.note = root.querySelector("#audit-note");
    this.form.addEventListener("submit", (event) => { event.preventDefault(); this.load(); });
  }

  async show() { await this.load(); }

  hide() {}

  async load() {
    const { since, limit } = this.form.elements;
    const from = since.value ? Date.parse(since.value) / 1000 : null;  // datetime-local: the browser's zone
    const { events } = await api.audit(from, Number(limit.value));
    this.tbody.replaceChildren(...events.map((e) => row([
      when(e.at), who(e), h("span", { className: `action action-${e.action}`, text: e.action }),
      e.target ?? "–", e.address ?? "–", e.detail == null ? "" : JSON.stringify(e.detail),
    ], { "data-action": e.action })));
    this.note.textContent = `${events.length} event${events.length === 1 ? "" : "s"}, newest first`
      + (events.length >= Number(limit.value) ? ` (the newest ${limit.value}: raise the limit or narrow "since")` : "");
  }
}

function who(event) {
  const kind = { user: "user", api_key: "API key", device: "device", legacy: "hub token" }[event.actor_kind];
  return kind ? `${event.actor} (${kind})` : event.actor;
}
