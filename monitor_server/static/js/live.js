// The /ws/ui socket: snapshot then events; on a drop, say so, back off, reconnect and resync.

const MIN_DELAY = 500;
const MAX_DELAY = 15000;
const SESSION_ENDED = 4401;

export class Live {
  constructor({ onSnapshot, onEvents, onStatus }) {
    Object.assign(this, { onSnapshot, onEvents, onStatus });
    this.delay = MIN_DELAY;
    this.skewMs = 0;      // hub clock minus ours, so "last seen" does not depend on the browser clock
    this.timer = null;
    this.socket = null;
  }

  serverNow() { return Date.now() + this.skewMs; }

  start() {
    clearTimeout(this.timer);
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws/ui`);
    this.socket = socket;
    let opened = false;
    socket.onopen = () => { opened = true; };
    socket.onmessage = (message) => this.receive(JSON.parse(message.data));
    socket.onclose = (event) => this.closed(event, opened);
    this.onStatus({ state: "connecting" });
  }

  receive(frame) {
    this.skewMs = frame.server_time * 1000 - Date.now();
    if (frame.type === "snapshot") {
      this.delay = MIN_DELAY;
      this.onSnapshot(frame.devices);
      this.onStatus({ state: "live" });
    } else if (frame.type === "events") {
      this.onEvents(frame.events);
    }
  }

  async closed(event, opened) {
    if (event.code === SESSION_ENDED || (!opened && !(await this.stillLoggedIn()))) {
      location.reload();  // the hub answers with the login form
      return;
    }
    const wait = this.delay + Math.random() * this.delay * 0.3;
    this.delay = Math.min(this.delay * 2, MAX_DELAY);
    this.onStatus({ state: "down", retryAt: Date.now() + wait });
    this.timer = setTimeout(() => this.start(), wait);
  }

  async stillLoggedIn() {
    try {
      return (await fetch("/ui/session", { credentials: "same-origin" })).status !== 401;
    } catch {
      return true;  // hub unreachable: keep retrying
    }
  }

  retryNow() {
    if (this.socket?.readyState === WebSocket.CLOSED) this.start();
  }
}
