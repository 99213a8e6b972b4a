// The device page's credential panel: its state for everyone, revoke/rotate/reset for admins.
import { api } from "./api.js";
import { attempt, when } from "./dom.js";

const ACTIONS = {
  revoke: {
    ask: (id) => `Revoke the credential of ${id}? Its agent is disconnected now and refused from then on; `
      + "it can enroll again only after a reset.",
    run: async (id) => { await api.revoke(id); return "Credential revoked; the agent was disconnected."; },
  },
  rotate: {
    ask: (id) => `Send ${id} a new credential? The old one keeps working until the agent confirms it stored the new one.`,
    run: async (id) => {
      const { rotated } = await api.rotate(id);  // the hub waits a little for the agent's answer
      return rotated ? "Rotated: the agent stored its new credential and the old one no longer works."
        : "New credential sent; the agent has not confirmed yet, so the old one works until it does.";
    },
  },
  reset: {
    ask: (id) => `Reset ${id}? Its credential is forgotten (the agent is refused) and the id may enroll again.`,
    run: async (id) => {
      const { had_credential: had } = await api.reset(id);
      return had ? "Credential forgotten: the id may enroll again." : "The device had no credential.";
    },
  },
};

export class CredentialPanel {
  constructor(root) {
    this.state = root.querySelector("#credential-state");
    this.status = root.querySelector("#credential-message");
    this.deviceId = null;
    this.buttons = [...root.querySelectorAll("[data-credential]")];
    for (const control of this.buttons) {
      control.addEventListener("click", () => this.act(control.dataset.credential));
    }
  }

  async show(deviceId) {
    this.deviceId = deviceId;
    this.status.textContent = "";
    await this.load();
  }

  async load() {
    const id = this.deviceId;
    const found = await api.credential(id);
    if (id !== this.deviceId) return;
    this.state.textContent = describe(found);
  }

  async act(action) {
    const id = this.deviceId;
    const { ask, run } = ACTIONS[action];
    if (!confirm(ask(id))) return;
    for (const control of this.buttons) control.disabled = true;  // one change at a time
    try {
      await attempt(this.status, () => run(id), "Working…");  // rotation waits for the agent (up to 10 s)
    } finally {
      for (const control of this.buttons) control.disabled = false;
    }
    if (id === this.deviceId) await this.load().catch(() => {});
  }
}

function describe(found) {
  if (found.credential === null) return "No device credential: the agent uses the legacy token, or has not enrolled.";
  const parts = [found.revoked ? "Revoked" : "Live", `issued ${when(found.issued_at)}`];
  if (found.rotated_at) parts.push(`rotated ${when(found.rotated_at)}`);
  if (found.rotation_pending) parts.push("rotation pending (waiting for the agent to confirm)");
  if (found.tags?.length) parts.push(`tags ${found.tags.join(", ")}`);
  return parts.join(" · ");
}
