// Boot: live socket -> fleet state -> views; a hash router picks the fleet or a device page.
import { api } from "./api.js";
import { DeviceView } from "./device.js";
import { FleetState } from "./fleet-state.js";
import { FleetView } from "./fleet.js";
import { Live } from "./live.js";

const INFO_REFRESH_MS = 250;
const BULK_REFRESH_OVER = 20;  // more unknown devices than this: one GET /devices instead of one each

const state = new FleetState();
const live = new Live({
  onSnapshot: (devices) => { state.reset(devices); deviceView.resync(); },
  onEvents: (events) => state.apply(events),
  onStatus: showLinkState,
});
const now = () => live.serverNow();
const fleetView = new FleetView(document.querySelector("#fleet-view"), state, now);
const deviceView = new DeviceView(document.querySelector("#device-view"), state, now);
window.monitorDashboard = { state, fleetView, live };  // for benchmarks and the curious, in devtools

function route() {
  const match = location.hash.match(/^#\/device\/(.+)$/);
  const deviceId = match ? decodeURIComponent(match[1]) : null;
  document.querySelector("#fleet-view").hidden = deviceId !== null;
  document.querySelector("#device-view").hidden = deviceId === null;
  document.title = deviceId ? `${deviceId} · Fleet monitor` : "Fleet monitor";
  if (deviceId) deviceView.show(deviceId).catch(reportError);
  else deviceView.hide();
  document.querySelector("#main").focus({ preventScroll: true });
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

document.querySelector("#banner-retry").addEventListener("click", () => live.retryNow());
window.addEventListener("hashchange", route);
setInterval(() => refreshIncomplete().catch(reportError), INFO_REFRESH_MS);
route();
live.start();
