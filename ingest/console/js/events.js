// Events: search by type, source and time; one event with its executions, and each
// execution's attempts with their responses and errors.

import { api, query } from "./api.js";
import { executionRows } from "./actions.js";
import { attemptList } from "./executions.js";
import { field, fill, pager, h, hashParams, heading, json, localTime, rfc3339, run, setHashParams, table, time }
  from "./dom.js";
import { refreshOnChange } from "./live.js";

export async function eventsPage(main) {
  const params = hashParams();
  const form = h("form", { class: "filters", role: "search", "aria-label": "Search events" },
    field("Type (exact, or a prefix ending in *)", h("input", { name: "type", value: params.get("type") || "",
      placeholder: "invoice.*" })),
    field("Source", h("input", { name: "source", value: params.get("source") || "" })),
    field("Received from", h("input", { type: "datetime-local", name: "since", value: localTime(params.get("since")) })),
    field("Received before", h("input", { type: "datetime-local", name: "until", value: localTime(params.get("until")) })),
    h("button", { type: "submit" }, "Search"));
  const results = h("div", {});
  fill(main, heading("Events"), form, results);
  let cursors = [null];
  const filters = () => {
    const raw = Object.fromEntries(new FormData(form).entries());
    return { ...raw, since: rfc3339(raw.since), until: rfc3339(raw.until) };
  };
  const load = async () => {
    const page = await api("GET", `/v1/events${query({ ...filters(), limit: 50, cursor: cursors.at(-1) })}`);
    fill(results,
      table("Events", [
        ["Received", (e) => time(e.received_at)],
        ["Type", (e) => h("a", { href: `#/events/${encodeURIComponent(e.id)}` }, e.type)],
        ["Source", (e) => e.source || "—"],
        ["Id", (e) => h("span", { class: "mono" }, e.id)],
        ["Matched", (e) => (e.matched_count ?? "…"), { num: true }],
      ], page.data, "No events match."),
      pager(cursors, page.next_cursor, load, ["Newer", "Older"]));
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    cursors = [null];
    setHashParams("/events", filters());
    run(form.querySelector("button"), load);
  });
  await load();
  // Only the first page follows live: paging back should not jump.
  refreshOnChange(() => (cursors.length === 1 ? load().catch(() => {}) : undefined));
}

async function executionDetails(executions) {
  const views = await Promise.all(executions.map((x) => api("GET", `/v1/executions/${x.id}`)));
  return views.map((view) => h("details", { class: "panel", open: true },
    h("summary", {}, `Execution ${view.id} — ${view.status.replace("_", " ")}`),
    h("p", {}, "Action ", h("a", { href: `#/actions/${view.action_id}` }, view.action_id), " · ",
      h("a", { href: `#/executions/${view.id}` }, "execution details")),
    attemptList(view.attempts)));
}

export async function eventPage(main, id) {
  const event = await api("GET", `/v1/events/${encodeURIComponent(id)}`);
  const executionsBox = h("div", { id: "event-executions" });
  const attemptsBox = h("div", {});
  const draw = async (current) => {
    fill(executionsBox, executionRows(current.executions, "Executions of this event"));
    fill(attemptsBox, await executionDetails(current.executions));
  };
  fill(main,
    heading(`Event ${event.type}`),
    h("section", { class: "panel", "aria-labelledby": "event-title" },
      h("h2", { id: "event-title" }, "Event"),
      h("dl", { class: "settings" },
        h("dt", {}, "Id"), h("dd", {}, h("code", {}, event.id)),
        h("dt", {}, "Type"), h("dd", {}, h("code", {}, event.type)),
        h("dt", {}, "Source"), h("dd", {}, event.source || "—"),
        h("dt", {}, "Time"), h("dd", {}, time(event.time)),
        h("dt", {}, "Received"), h("dd", {}, time(event.received_at)),
        h("dt", {}, "Matched"), h("dd", {}, event.matched_at ? [`${event.matched_count} actions, `, time(event.matched_at)] : "not yet")),
      h("h3", {}, "Data"), json(event.data ?? null),
      Object.keys(event.metadata || {}).length ? [h("h3", {}, "Metadata"), json(event.metadata)] : null),
    h("section", { "aria-labelledby": "executions-title" },
      h("h2", { id: "executions-title" }, "Executions"), executionsBox),
    h("section", { "aria-labelledby": "attempts-title" },
      h("h2", { id: "attempts-title" }, "Attempts"), attemptsBox));
  await draw(event);
  refreshOnChange(async () => {
    const latest = await api("GET", `/v1/events/${encodeURIComponent(id)}`).catch(() => null);
    if (latest) await draw(latest).catch(() => {});
  });
}
