// The device page's name and tags: the title shows the display name (with the id), the tags line
// every tag (the agent's marked), and operators edit the name and their own tags (PATCH /devices/{id}).
// A rename from another browser arrives as a `device` event and redraws this too.
import { api } from "./api.js";
import { parseTags } from "./bulk-state.js";

export class DeviceMeta {
  constructor(root, state) {
    Object.assign(this, { root, state });
    this.form = root.querySelector("#device-meta");
    this.title = root.querySelector("#device-title");
    this.idNote = root.querySelector("#device-id-note");
    this.tags = root.querySelector("#device-tags");
    this.name = root.querySelector("#device-name");
    this.ownTags = root.querySelector("#device-own-tags");
    this.error = root.querySelector("#device-meta-error");
    this.deviceId = null;
    this.form.addEventListener("submit", (event) => { event.preventDefault(); this.save(); });
    state.subscribe((ids) => {
      if (this.deviceId && (ids === null || ids.has(this.deviceId))) this.render(false);
    });
  }

  show(deviceId) {
    this.deviceId = deviceId;
    this.error.textContent = "";
    this.render(true);
  }

  // `editing`: also refill the inputs (not while someone may be typing in them).
  render(editing) {
    const d = this.state.devices.get(this.deviceId);
    const name = d?.name || null;
    this.title.textContent = name ?? this.deviceId;
    this.idNote.textContent = name ? this.deviceId : "";
    const agent = new Set(d?.agent_tags ?? []);
    this.tags.replaceChildren(...(d?.tags ?? []).map((tag) => {
      const chip = document.createElement("span");
      chip.className = agent.has(tag) ? "tag agent" : "tag";
      chip.textContent = tag;
      if (agent.has(tag)) chip.title = "reported by the agent (its config)";
      return chip;
    }));
    if (editing || !this.form.contains(document.activeElement)) {
      this.name.value = name ?? "";
      this.ownTags.value = (d?.tags ?? []).filter((t) => !agent.has(t)).join(" ");
    }
  }

  async save() {
    const { tags, bad } = parseTags(this.ownTags.value);
    if (bad.length) { this.error.textContent = `Not a tag: ${bad.join(", ")} (letters, digits, ._:/=-)`; return; }
    this.error.textContent = "";
    try {
      const device = await api.updateDevice(this.deviceId, { name: this.name.value.trim(), tags });
      this.state.merge(device);
      document.activeElement?.blur?.();
      this.render(true);
    } catch (error) {
      this.error.textContent = error.message;
    }
  }
}
