// Boot: who is logged in (role), live socket -> fleet state -> views; a hash router picks the
// fleet, a device page or an admin page.
import { api } from "./api.js";
import { Alerts } from "./alerts.js";
import { ApiKeysView } from "./api-keys.js";
import { AuditView } from "./audit.js";
import { BulkPanel } from "./bulk.js";
import { DeviceView } from "./device.js";
import { EnrollmentView } from "./enrollment.js";
import { FleetState } from "./fleet-state.js";
import { FleetView } from "./fleet.js";
import { Live } from "./live.js";
import { Releases } from "./releases.js";
import { Role } from "./role.js";
import { UsersView } from "./users.js";

const INFO_REFRESH_MS = 250;
const BULK_REFRESH_OVER = 20;  // more unknown devices than this: one GET /devices instead of one each

const role = new Role();
const state = new FleetState();
const alerts = new Alerts(document.querySelector("#alerts-view"), role);
const releases = new Releases(document.querySelector("#releases-view"), role);
const live = new Live({
  onSnapshot: (devices) => {
    state.reset(devices); deviceView.resync(); role.load(); alerts.reload().catch(reportError);
    releases.reload().catch(reportError);
  },
  onEvents: (events) => { state.apply(events); alerts.apply(events); releases.apply(events); },
  onStatus: showLinkState,
});
const now = () => live.serverNow();
const fleetView = new FleetView(document.querySelector("#fleet-view"), state, now);
fleetView.firingOf = (id) => alerts.state.firing(id);
alerts.state.subscribe((ids) => fleetView.invalidate(ids));
new BulkPanel(document.querySelector("#bulk"), document.querySelector("#bulk-progress"), fleetView, state, role);
const deviceView = new DeviceView(document.querySelector("#device-view"), state, now, role);
deviceView.commands.watch(state, now);  // warns when a command is queued for an absent device
const section = (id) => document.querySelector(id);
const adminViews = {
  users: { title: "Users", view: new UsersView(section("#users-view"), role), root: section("#users-view") },
  "api-keys": { title: "API keys", view: new ApiKeysView(section("#api-keys-view"), role), root: section("#api-keys-view") },
  enrollment: { title: "Enrollment tokens", view: new EnrollmentView(section("#enrollment-view")), root: section("#enrollment-view") },
  audit: { title: "Audit log", view: new AuditView(section("#audit-view")), root: section("#audit-view") },
};
window.monitorDashboard = { state, fleetView, live, role, alerts, releases };  // for benchmarks and the curious, in devtools

function route() {
  const device = location.hash.match(/^#\/device\/(.+)$/);
  const admin = location.hash.match(/^#\/admin\/([a-z-]+)$/);
  const alertsPage = location.hash === "#/alerts";
  const releasesPage = location.hash === "#/releases";
  const deviceId = device ? decodeURIComponent(device[1]) : null;
  const page = admin ? adminViews[admin[1]] : null;
  const allowed = page && role.may("admin");
  section("#fleet-view").hidden = deviceId !== null || admin !== null || alertsPage || releasesPage;
  if (alertsPage) alerts.show();
  else alerts.hide();
  if (releasesPage) releases.show();
  else releases.hide();
  section("#device-view").hidden = deviceId === null;
  section("#forbidden-view").hidden = !admin || allowed;
  for (const other of Object.values(adminViews)) {
    if (other !== page || !allowed) { other.root.hidden = true; other.view.hide(); }
  }
  for (const link of document.querySelectorAll("#admin-nav a, #alerts-nav, #releases-nav")) {
    if (link.getAttribute("href") === location.hash) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${deviceId ?? page?.title ?? (alertsPage ? "Alerts" : releasesPage ? "Releases" : "Fleet")} · Fleet monitor`;
  if (deviceId) {
    alerts.watchDevice(section("#device-alerts"), deviceId);
    deviceView.show(deviceId).catch(reportError);
  } else {
    alerts.forgetDevice();
    deviceView.hide();
  }
  if (!deviceId && !admin && !alertsPage && !releasesPage) fleetView.schedule();  // nothing is drawn while the view is hidden
  if (allowed) {
    page.root.hidden = false;
    page.view.show().catch(reportError);
  }
  section("#main").focus({ preventScroll: true });
}

let bannerTimer = 0;
function showLinkState({ state: linkState, retryAt }) {
  const label = document.querySelector("#link-state");
  const banner = document.querySelector("#banner");
  clearInterval(bannerTimer);
  label.textContent = { live: "live", connecting: "connecting…", down: "disconnected" }[linkState];
  banner.hidden = linkState !== "down";
  if (linkState !== "down") return;
  const text = document.querySelector("#banner-text");
  const tick = () => {
    const seconds = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
    text.textContent = `Connection to the hub lost. Reconnecting in ${seconds} s; data shown may be stale.`;
  };
  tick();
  bannerTimer = setInterval(tick, 500);
}

// A device first seen in an event without its details (a sample, say): fetch it, once.
async function refreshIncomplete() {
  const missing = [...state.devices.values()].filter((d) => d.incomplete).map((d) => d.device_id);
  if (!missing.length) return;
  for (const id of missing) state.devices.get(id).incomplete = false;
  if (missing.length > BULK_REFRESH_OVER) {
    for (const device of await api.devices()) state.merge(device);
  } else {
    await Promise.all(missing.map((id) => api.device(id).then((d) => state.merge(d), () => {})));
  }
}

function reportError(error) {
  console.error(error);
}

// The presence strip's left end, under it: how far back the chosen range goes.
function labelTimeline() {
  const range = document.querySelector("#range");
  section("#timeline-from").textContent = `${range.selectedOptions[0].textContent} ago`;
}

document.querySelector("#banner-retry").addEventListener("click", () => live.retryNow());
document.querySelector("#range").addEventListener("change", labelTimeline);
labelTimeline();
window.addEventListener("hashchange", route);
window.addEventListener("monitor:forbidden", () => role.load());  // refused: the role may have changed
setInterval(() => refreshIncomplete().catch(reportError), INFO_REFRESH_MS);
await role.load();  // before the first view: controls appear only for a role that may use them
role.onChange(() => route());
route();
live.start();
