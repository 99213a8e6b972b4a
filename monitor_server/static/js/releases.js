// The releases page (#/releases): the published agent releases, each one's rollout and its devices'
// progress, live from the `release` and `rollout` events of /ws/ui (releases-state.js); an admin
// starts a rollout of the selected release from the form.
import { api } from "./api.js";
import { button, h, row, when } from "./dom.js";
import { ReleasesState, STATES, rolloutBody, sizeText, targetText } from "./releases-state.js";

const LABEL = { rolled_back: "rolled back" };
const stateName = (state) => LABEL[state] ?? state;
const deviceLink = (id) => h("a", { href: `#/device/${encodeURIComponent(id)}`, text: id });

export class Releases {
  constructor(root, role) {
    Object.assign(this, { root, role });
    this.state = new ReleasesState();
    this.selected = null;  // the version whose devices are shown
    this.loaded = false;
    this.tbody = root.querySelector("#releases tbody");
    this.empty = root.querySelector("#releases-empty");
    this.detail = root.querySelector("#release-detail");
    this.status = root.querySelector("#rollout-status");
    this.form = root.querySelector("#rollout-form");
    this.form.addEventListener("submit", (event) => { event.preventDefault(); this.rollOut(); });
    this.state.subscribe(() => { if (!this.root.hidden) this.render(); });
  }

  // After each (re)connected snapshot and when an event names a release not known yet.
  async reload() {
    this.state.hold();
    let unknown = new Set();
    try {
      const { releases } = await api.releases();
      const details = await Promise.all(releases.map((r) => api.release(r.version).catch(() => null)));
      this.loaded = true;
      this.state.reset(releases, details.filter(Boolean));
    } finally {
      unknown = this.state.done();
    }
    this.readAgainFor(unknown);
  }

  apply(events) { this.readAgainFor(this.state.apply(events)); }

  // Events named releases the list did not have (published since it was read): read it again.
  readAgainFor(unknown) {
    if (unknown.size && this.loaded) this.reload().catch((error) => console.error(error));
  }

  // Shown: what we have at once, then the list read again (a release published since has no event).
  show() {
    this.root.hidden = false;
    this.render();
    this.reload().catch((error) => console.error(error));
  }
  hide() { this.root.hidden = true; }

  render() {
    const releases = this.state.list();
    if (this.selected === null || !this.state.get(this.selected)) this.selected = releases[0]?.version ?? null;
    this.empty.hidden = releases.length > 0;
    this.tbody.replaceChildren(...releases.map((r) => this.releaseRow(r)));
    this.renderDetail();
  }

  releaseRow(release) {
    const pick = button(release.version, () => { this.selected = release.version; this.render(); }, {
      "aria-pressed": String(release.version === this.selected), "aria-label": `Show release ${release.version}`,
    });
    const rollout = release.rollout;
    const target = h("span", { text: targetText(rollout) });
    const cells = [pick, sizeText(release.size), when(release.created_at), target, this.countsLine(release.version)];
    if (rollout?.paused) target.append(" ", h("strong", { className: "paused", text: "paused" }));
    const tr = row(cells);
    tr.dataset.version = release.version;
    if (rollout?.paused) tr.dataset.paused = "true";
    return tr;
  }

  // "offered 1 · downloading 0 · …", each count in a span with its state (for styles and tests).
  countsLine(version) {
    const counts = this.state.counts(version);
    const line = h("span", { className: "release-counts" });
    STATES.forEach((state, i) => {
      if (i) line.append(" · ");
      line.append(h("span", { className: `count state-${state}`, "data-state": state, text: `${stateName(state)} ${counts[state]}` }));
    });
    return line;
  }

  renderDetail() {
    const release = this.state.get(this.selected);
    this.detail.hidden = release === null;
    if (!release) return;
    this.detail.querySelector("#release-detail-title").textContent = `Release ${release.version}`;
    const rollout = release.rollout;
    this.detail.querySelector("#release-rollout").textContent = rollout
      ? `Rollout: ${targetText(rollout)}, started ${when(rollout.created_at)}${rollout.paused ? ", paused (too many failures)" : ""}.`
      : "Not rolled out yet.";
    this.detail.querySelector("#release-counts").replaceChildren(this.countsLine(release.version));
    const devices = this.state.devices(release.version);
    this.detail.querySelector("#release-devices-empty").hidden = devices.length > 0;
    this.detail.querySelector("#release-devices tbody").replaceChildren(...devices.map((d) => {
      const tr = row([deviceLink(d.device_id), stateName(d.state), d.reason || "–", when(d.updated_at)]);
      tr.dataset.deviceId = d.device_id;
      tr.dataset.state = d.state;
      return tr;
    }));
  }

  // POST /releases/{version}/rollout with the form's target (admin).
  async rollOut() {
    const version = this.selected;
    const fields = this.form.elements;
    this.status.classList.remove("error");
    try {
      const body = rolloutBody(fields.kind.value, fields.value.value, fields.allow_downgrade.checked);
      const made = await api.rollOut(version, body);
      this.status.textContent = `Rollout of ${version} started: offered to ${made.offered} connected agent(s).`;
    } catch (error) {
      this.status.textContent = error.message;
      this.status.classList.add("error");
    }
  }
}
