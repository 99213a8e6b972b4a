// Admin page: API keys for scripts. List, create (the key is shown once, with a copy button), delete.
import { api } from "./api.js";
import { attempt, button, h, row, secretField, when } from "./dom.js";

export class ApiKeysView {
  constructor(root, role) {
    Object.assign(this, { root, role });
    this.tbody = root.querySelector("#api-keys tbody");
    this.form = root.querySelector("#api-key-form");
    this.owner = this.form.elements.owner;
    this.status = root.querySelector("#api-keys-status");
    this.created = root.querySelector("#api-key-created");
    this.form.addEventListener("submit", (event) => { event.preventDefault(); this.create(); });
  }

  async show() {
    this.status.textContent = "";
    this.created.replaceChildren();
    this.created.hidden = true;
    await Promise.all([this.load(), this.loadOwners()]);
  }

  hide() {
    this.created.replaceChildren();  // a key shown once does not linger in the page
  }

  async load() {
    const { api_keys: keys } = await api.apiKeys();
    this.tbody.replaceChildren(...keys.map((key) => row([
      key.name, key.owner, key.role, when(key.created_at), key.expires_at ? when(key.expires_at) : "never",
      h("code", { text: key.id }),
      button("Delete", () => this.remove(key), { "aria-label": `Delete API key ${key.name}` }),
    ], { "data-key": key.id })));
  }

  async loadOwners() {
    const { users } = await api.users();
    const me = this.role.principal?.user;
    this.owner.replaceChildren(...users.map((u) => h("option", { value: u.name, text: `${u.name} (${u.role})`, selected: u.name === me })));
  }

  async create() {
    const { name, role, owner, expires } = this.form.elements;
    const body = { name: name.value.trim(), role: role.value, owner: owner.value || null };
    if (expires.value) body.expires_in = Number(expires.value);
    this.created.replaceChildren();
    let answer = null;
    const done = await attempt(this.status, async () => {
      answer = await api.createApiKey(body);
      return `API key ${answer.name} created for ${answer.owner}.`;
    });
    if (!done) return;
    this.created.replaceChildren(
      h("p", { text: "Copy the key now: the hub keeps only its hash and never shows it again." }),
      secretField("API key", answer.key, "api-key-secret"),
      h("p", { className: "muted", text: "Use it as: curl -H \"Authorization: Bearer $MONITOR_API_KEY\" " + `${location.origin}/devices` }),
    );
    this.created.hidden = false;
    this.form.elements.name.value = "";
    await this.load();
  }

  async remove(key) {
    if (!confirm(`Delete API key ${key.name} of ${key.owner}? Scripts using it are refused from now on.`)) return;
    await attempt(this.status, async () => { await api.deleteApiKey(key.id); return `API key ${key.name} deleted.`; });
    await this.load();
  }
}
