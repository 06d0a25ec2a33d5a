// Endpoints: each destination's circuit (state, failure rate in the current window, failures
// in a row, trips) and a manual reset, which closes the circuit at once.

import { api } from "./api.js";
import { badge, fill, h, heading, notify, percent, run, table, time } from "./dom.js";
import { refreshOnChange } from "./live.js";

/** The failure rate of the circuit's current window; a circuit that opens starts a new,
 *  empty one, so an open circuit shows what happened since. */
function failureRate(endpoint) {
  const w = endpoint.window;
  if (!w.attempts) return h("span", { class: "muted" }, "no attempts yet");
  return `${percent(w.failure_rate)} (${w.failures} of ${w.attempts})`;
}

export async function endpointsPage(main) {
  const results = h("div", { id: "endpoint-results" });
  fill(main, heading("Endpoints"),
    h("p", { class: "muted" }, "One circuit per destination (scheme, host and port). An open circuit holds ",
      "deliveries back until its cool-down ends; a reset closes it now."), results);
  const load = async () => {
    const endpoints = (await api("GET", "/v1/endpoints")).data;
    fill(results, table("Endpoints", [
      ["Destination", (e) => h("span", { class: "mono" }, e.endpoint)],
      ["Circuit", (e) => badge(e.state)],
      ["Failure rate (window)", failureRate, { num: true }],
      ["Failures in a row", (e) => e.consecutive_failures, { num: true }],
      ["Trips", (e) => e.trips, { num: true }],
      ["Opened", (e) => time(e.opened_at)],
      ["Probe after", (e) => time(e.retry_at)],
      ["Last error", (e) => e.last_error || ""],
      ["", (e) => (e.state === "closed" ? "" : h("button", { type: "button", "aria-label": `Reset ${e.endpoint}`,
        onclick: (event) => run(event.currentTarget, async () => {
          await api("POST", `/v1/endpoints/${e.id}/reset`);
          notify(`Closed the circuit of ${e.endpoint}.`);
          await load();
        }) }, "Reset"))],
    ], endpoints, "No deliveries yet, so no endpoints."));
  };
  await load();
  refreshOnChange(() => load().catch(() => {}));
}
