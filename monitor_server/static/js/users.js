// Admin page: users. List, add with a role, change a role or a password, delete.
// A new password or a deletion ends that user's sessions: their open dashboards go to login.
import { api } from "./api.js";
import { attempt, button, h, row, when } from "./dom.js";

const ROLES = ["viewer", "operator", "admin"];

export class UsersView {
  constructor(root, role) {
    Object.assign(this, { root, role });
    this.tbody = root.querySelector("#users tbody");
    this.form = root.querySelector("#user-form");
    this.status = root.querySelector("#users-status");
    this.form.addEventListener("submit", (event) => { event.preventDefault(); this.create(); });
  }

  async show() {
    this.status.textContent = "";
    await this.load();
  }

  hide() {}

  async load() {
    const { users } = await api.users();
    this.tbody.replaceChildren(...users.map((user) => this.userRow(user)));
  }

  async create() {
    const { name, password, role } = this.form.elements;
    const body = { name: name.value.trim(), password: password.value, role: role.value };
    const done = await attempt(this.status, async () => {
      await api.createUser(body);
      return `User ${body.name} added as ${body.role}.`;
    });
    if (!done) return;
    this.form.reset();
    await this.load();
  }

  userRow(user) {
    const self = user.name === this.role.principal?.user;
    const select = h("select", { "aria-label": `Role of ${user.name}` },
      ...ROLES.map((r) => h("option", { value: r, text: r, selected: r === user.role })));
    select.addEventListener("change", () => this.update(user.name, { role: select.value }, `${user.name} is now ${select.value}.`));
    const password = h("input", {
      type: "password", minLength: 8, autocomplete: "new-password", placeholder: "new password",
      "aria-label": `New password for ${user.name}`,
    });
    const setPassword = button("Set password", () => {
      if (password.value) this.update(user.name, { password: password.value }, `Password of ${user.name} changed; their sessions ended.`);
    }, { "aria-label": `Set the password of ${user.name}` });
    const remove = button("Delete", () => this.remove(user.name, self), { "aria-label": `Delete user ${user.name}` });
    const actions = h("div", { className: "actions" }, password, setPassword, remove);
    return row([h("span", { text: user.name + (self ? " (you)" : "") }), select, when(user.created_at), when(user.changed_at), actions],
      { "data-user": user.name });
  }

  async update(name, body, message) {
    await attempt(this.status, async () => { await api.updateUser(name, body); return message; });
    await this.load();
  }

  async remove(name, self) {
    const warning = self ? " That is you: this page logs out." : " Their open dashboards are logged out.";
    if (!confirm(`Delete user ${name}?${warning}`)) return;
    await attempt(this.status, async () => { await api.deleteUser(name); return `User ${name} deleted.`; });
    await this.load();
  }
}
