// Admin page: enrollment tokens. List, create (the token and an enroll command shown once), delete.
import { api } from "./api.js";
import { attempt, button, h, row, secretField, when } from "./dom.js";

export class EnrollmentView {
  constructor(root) {
    this.root = root;
    this.tbody = root.querySelector("#enrollment-tokens tbody");
    this.form = root.querySelector("#enrollment-form");
    this.status = root.querySelector("#enrollment-status");
    this.created = root.querySelector("#enrollment-created");
    this.form.addEventListener("submit", (event) => { event.preventDefault(); this.create(); });
  }

  async show() {
    this.status.textContent = "";
    this.hide();
    await this.load();
  }

  hide() {
    this.created.replaceChildren();  // a token shown once does not linger in the page
    this.created.hidden = true;
  }

  async load() {
    const { enrollment_tokens: tokens } = await api.enrollmentTokens();
    const now = Date.now();
    this.tbody.replaceChildren(...tokens.map((token) => row([
      h("code", { text: token.id }), token.created_by, when(token.created_at), when(token.expires_at),
      `${token.uses} / ${token.max_uses}`, token.tags.join(", ") || "–", usable(token, now),
      button("Delete", () => this.remove(token), { "aria-label": `Delete enrollment token ${token.id}` }),
    ], { "data-token": token.id })));
  }

  async create() {
    const { expires, max_uses: maxUses, tags } = this.form.elements;
    const body = {
      expires_in: Number(expires.value),
      max_uses: Number(maxUses.value),
      tags: tags.value.split(/[\s,]+/).filter(Boolean),
    };
    this.hide();
    let answer = null;
    const done = await attempt(this.status, async () => {
      answer = await api.createEnrollmentToken(body);
      return `Enrollment token created: ${body.max_uses} device(s), until ${when(answer.expires_at)}.`;
    });
    if (!done) return;
    const command = `MONITOR_AGENT_ENROLLMENT_TOKEN=${answer.token} monitor-agent enroll --server ${location.origin}`;
    this.created.replaceChildren(
      h("p", { text: "Copy the token now: the hub keeps only its hash and never shows it again." }),
      secretField("Enrollment token", answer.token, "enrollment-secret"),
      secretField("Enroll command", command, "enroll-command"),
      h("p", { className: "muted", text: "Run the command on each machine to enroll: the agent exchanges the token "
        + "for its own credential and keeps it in its state folder." }),
    );
    this.created.hidden = false;
    await this.load();
  }

  async remove(token) {
    if (!confirm(`Delete enrollment token ${token.id}? Devices enrolled with it keep their credentials.`)) return;
    await attempt(this.status, async () => {
      await api.deleteEnrollmentToken(token.id);
      return `Enrollment token ${token.id} deleted.`;
    });
    await this.load();
  }
}

function usable(token, now) {
  if (token.revoked) return "deleted";
  if (Date.parse(token.expires_at) <= now) return "expired";
  if (token.uses >= token.max_uses) return "used up";
  return "usable";
}
