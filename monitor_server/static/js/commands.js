// The device page's command panel: send, then watch each command move through its states. A device
// that is offline, or that the hub has never seen, gets a warning: its commands wait in the queue.
import { api } from "./api.js";
import { ago, clock, parseTime } from "./format.js";
import { parseArgs } from "./json-args.js";

// A command only moves forward; a late HTTP answer must not undo a newer pushed state.
const RANK = { pending: 0, delivered: 1, acked: 2, cancelled: 2, expired: 2 };
const OPEN = new Set(["pending", "delivered"]);

export class CommandPanel {
  constructor(root, role) {
    this.root = root;
    this.role = role;  // cancel buttons only for operators and admins (the hub refuses others anyway)
    this.tbody = root.querySelector("#commands tbody");
    this.form = root.querySelector("#command-form");
    this.error = root.querySelector("#command-error");
    this.warning = root.querySelector("#command-warning");
    this.state = null;
    this.ready = false;
    this.queuedOffline = null;  // the last command queued while the device was away
    this.rows = new Map();
    this.deviceId = null;
    role.onChange(() => { for (const row of this.rows.values()) showCancel(row, this.role); });
    this.form.addEventListener("submit", (event) => { event.preventDefault(); this.submitForm(); });
    for (const button of root.querySelectorAll("[data-command]")) {
      button.addEventListener("click", () => this.quick(button.dataset.command));
    }
  }

  // The fleet state tells whether the device is online; the warning follows its presence live.
  watch(state, now) {
    Object.assign(this, { state, now });
    state.subscribe((ids) => {
      if (ids === null) this.ready = true;  // a snapshot: from now on "unknown" means unknown
      if (this.deviceId && (ids === null || ids.has(this.deviceId))) this.warn();
    });
  }

  warn() {
    const text = this.deviceId && this.ready ? awayNote(this.state?.devices.get(this.deviceId), this.deviceId, this.now?.()) : "";
    this.warning.textContent = text && text + queuedNote(this.queuedOffline);
    this.warning.hidden = !text;
  }

  async show(deviceId) {
    this.deviceId = deviceId;
    this.rows.clear();
    this.tbody.replaceChildren();
    this.error.textContent = "";
    this.queuedOffline = null;
    this.warn();
    const { commands } = await api.commands(deviceId);
    if (this.deviceId !== deviceId) return;
    for (const command of commands.reverse()) this.upsert(command);
  }

  quick(name) {
    if (name === "restart" && !confirm(`Restart the agent on ${this.deviceId}?`)) return;
    const args = name === "echo" ? (this.parseArgs() ?? { text: "hello" }) : null;
    if (args !== undefined) this.send(name, args);
  }

  submitForm() {
    const args = this.parseArgs();
    if (args !== undefined) this.send(this.form.command.value.trim(), args);
  }

  parseArgs() {
    const args = parseArgs(this.form.args.value);
    if (args === undefined) this.error.textContent = "Arguments must be a JSON object, e.g. {\"text\": \"hi\"}";
    return args;
  }

  async send(name, args) {
    this.error.textContent = "";
    try {
      const command = await api.send(this.deviceId, name, args);
      if (!this.state?.devices.get(command.device_id)?.online) this.queuedOffline = command;
      this.upsert(command);
      this.warn();
    } catch (error) {
      this.error.textContent = error.message;
    }
  }

  upsert(command) {
    if (command.device_id !== this.deviceId) return;
    let row = this.rows.get(command.id);
    if (row && RANK[command.status] < RANK[row.status]) return;
    if (!row) {
      row = buildRow(command, () => this.cancel(command.id));
      this.rows.set(command.id, row);
      this.tbody.prepend(row.tr);
    }
    row.status = command.status;
    if (this.queuedOffline?.id === command.id && !OPEN.has(command.status)) {
      this.queuedOffline = null;  // no longer waiting
      this.warn();
    }
    fillRow(row, command);
    showCancel(row, this.role);
  }

  async cancel(id) {
    try {
      this.upsert(await api.cancel(this.deviceId, id));
    } catch (error) {
      this.error.textContent = error.message;
    }
  }
}

function buildRow(command, onCancel) {
  const tr = document.createElement("tr");
  tr.dataset.commandId = String(command.id);
  for (let i = 0; i < 7; i += 1) tr.append(document.createElement("td"));
  const [id, name, args, state, queued, result, actions] = tr.children;
  // Narrow screens show each command as a block: the cells name themselves (app.css).
  id.dataset.label = "#";
  state.dataset.label = "state";
  queued.dataset.label = "queued";
  args.className = "args";
  id.textContent = String(command.id);
  name.textContent = command.command;
  args.textContent = command.args == null ? "" : JSON.stringify(command.args);
  queued.textContent = clock(parseTime(command.created_at));
  result.className = "result";
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.textContent = "Cancel";
  cancel.setAttribute("aria-label", `Cancel command ${command.id}`);
  cancel.addEventListener("click", onCancel);
  actions.append(cancel);
  return { tr, cancel, status: command.status };
}

function fillRow(row, command) {
  const [, , , state, , result] = row.tr.children;
  const outcome = command.status === "acked" ? (command.success ? " · ok" : " · failed") : "";
  state.textContent = command.status + outcome;
  state.className = `state state-${command.status === "acked" && !command.success ? "failed" : command.status}`;
  row.tr.dataset.status = command.status;
  const detail = [command.message, command.result == null ? "" : JSON.stringify(command.result)];
  result.textContent = detail.filter(Boolean).join(" ");
}

function showCancel(row, role) {
  row.cancel.hidden = !OPEN.has(row.status) || !role.may("operator");
}

// Why a command may not run soon, or "" when the device is online.
function awayNote(device, id, nowMs) {
  if (!device) return `No device "${id}" has connected to this hub yet: a command waits in the queue until it does.`;
  if (device.online) return "";
  const since = device.presence_since ? ` since ${clock(device.presence_since)}` : "";
  const seen = device.last_seen ? ` (last seen ${ago(device.last_seen, nowMs ?? Date.now())})` : "";
  return `${id} is offline${since}${seen}: a command waits in the queue and is delivered when it reconnects.`;
}

function queuedNote(command) {
  if (!command) return "";
  const until = command.expires_at ? `; it expires at ${clock(parseTime(command.expires_at))} if still undelivered` : "";
  return ` Command #${command.id} (${command.command}) is queued for it${until}.`;
}
