// Who is logged in and what the page offers them. Elements marked data-role="operator" or
// data-role="admin" stay hidden (and their controls disabled) below that role. This only
// tidies the page: the hub refuses a viewer's write and a non-admin's admin call anyway.

const RANK = { viewer: 0, operator: 1, admin: 2 };

export class Role {
  constructor() {
    this.principal = null;  // {kind, name, role, user, device_id} from GET /ui/session
    this.listeners = [];
  }

  get role() { return this.principal?.role ?? "viewer"; }

  may(role) { return RANK[this.role] >= RANK[role]; }

  onChange(listener) { this.listeners.push(listener); }

  async load() {
    try {
      const response = await fetch("/ui/session", { credentials: "same-origin", cache: "no-store" });
      if (response.status === 401) { location.reload(); return; }
      if (!response.ok) return;
      const { principal } = await response.json();
      this.set(principal);
    } catch { /* hub unreachable: keep what we had (nothing: the least privilege) */ }
  }

  set(principal) {
    const changed = principal?.role !== this.principal?.role || principal?.name !== this.principal?.name;
    this.principal = principal;
    this.apply(document);
    if (changed) for (const listener of this.listeners) listener(this);
  }

  apply(root) {
    document.body.dataset.role = this.role;
    for (const element of root.querySelectorAll("[data-role]")) {
      const allowed = this.may(element.dataset.role);
      element.hidden = !allowed;
      for (const control of element.querySelectorAll("button, input, select, textarea")) control.disabled = !allowed;
      if (element.matches("button, input, select, textarea")) element.disabled = !allowed;
    }
    const who = document.querySelector("#whoami");
    if (who && this.principal) {
      const name = this.principal.kind === "legacy" ? "hub token" : this.principal.name;
      who.querySelector(".who-name").textContent = name;
      who.querySelector(".who-role").textContent = this.role;
      who.hidden = false;
    }
  }
}
