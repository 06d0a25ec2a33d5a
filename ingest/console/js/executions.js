// Executions: filter by status, action and time; select and retry or cancel; retry everything
// a filter selects (in the scheduler, page by page); export the filtered list as CSV; and one
// execution with its attempts.

import { api, download, query } from "./api.js";
import { badge, field, pager, shortId, fill, h, hashParams, heading, json, localTime, notify, rfc3339, run, select, setHashParams,
  table, time } from "./dom.js";
import { refreshOnChange } from "./live.js";

const STATUSES = ["pending", "processing", "retry_scheduled", "succeeded", "failed", "cancelled"];
const RETRYABLE = new Set(["failed", "cancelled"]);
const CANCELLABLE = new Set(["pending", "retry_scheduled"]);

/** Attempts with their responses and errors. */
export function attemptList(attempts) {
  if (!attempts.length) return h("p", { class: "muted" }, "No attempts yet.");
  return attempts.map((a) => h("div", { class: "attempt" },
    h("p", {}, h("strong", {}, `Attempt ${a.attempt}`), " ", badge(a.outcome, a.outcome === "succeeded" ? "succeeded" : "failed"),
      " ", a.response_status ? h("code", {}, `HTTP ${a.response_status}`) : "", ` in ${a.duration_ms} ms, `,
      time(a.started_at), " → ", h("span", { class: "mono" }, a.request_url)),
    a.error_message ? h("p", { class: "error-text" }, `${a.error_kind || "error"}: ${a.error_message}`) : null,
    a.response_body ? h("details", {}, h("summary", {}, "Response body"), h("pre", {}, a.response_body)) : null,
    a.response_headers ? h("details", {}, h("summary", {}, "Response headers"), json(a.response_headers)) : null));
}

export async function executionsPage(main) {
  const params = hashParams();
  const actions = (await api("GET", "/v1/actions?limit=1000")).data;
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter executions" },
    field("Status", select("status", [["", "any"], ...STATUSES.map((s) => [s, s.replace("_", " ")])],
      params.get("status") || "")),
    field("Action", select("action_id", [["", "any"], ...actions.map((a) => [a.id, a.name])],
      params.get("action_id") || "")),
    field("Event id", h("input", { name: "event_id", value: params.get("event_id") || "" })),
    field("Created from", h("input", { type: "datetime-local", name: "since", value: localTime(params.get("since")) })),
    field("Created before", h("input", { type: "datetime-local", name: "until", value: localTime(params.get("until")) })),
    h("button", { type: "submit" }, "Filter"));
  const selected = new Set();
  const results = h("div", { id: "execution-results" });
  const status = h("p", { class: "muted", role: "status", id: "bulk-status" });
  const filters = () => {
    const raw = Object.fromEntries(new FormData(form).entries());
    return { ...raw, since: rfc3339(raw.since), until: rfc3339(raw.until) };
  };
  const names = Object.fromEntries(actions.map((a) => [a.id, a.name]));
  let cursors = [null];
  let shown = [];

  const retrySelected = h("button", { type: "button", id: "retry-selected" }, "Retry selected");
  const cancelSelected = h("button", { type: "button", id: "cancel-selected" }, "Cancel selected");
  const retryAll = h("button", { type: "button", id: "retry-matching" }, "Retry all matching");
  const exportCsv = h("button", { type: "button", id: "export-csv" }, "Export CSV");

  const row = (x) => {
    const box = h("input", { type: "checkbox", "aria-label": `Select execution ${x.id}`,
      checked: selected.has(x.id), "data-id": x.id });
    box.addEventListener("change", () => {
      if (box.checked) selected.add(x.id); else selected.delete(x.id);
    });
    return h("tr", { "data-status": x.status },
      h("td", {}, box),
      h("td", {}, h("a", { href: `#/executions/${x.id}` }, shortId(x.id))),
      h("td", {}, h("a", { href: `#/events/${encodeURIComponent(x.event_id)}` }, x.event_id)),
      h("td", {}, h("a", { href: `#/actions/${x.action_id}` }, names[x.action_id] || shortId(x.action_id))),
      h("td", {}, badge(x.status)),
      h("td", { class: "num" }, `${x.attempts}/${x.max_attempts}`),
      h("td", {}, x.last_error || ""),
      h("td", {}, time(x.created_at)));
  };

  const load = async () => {
    const page = await api("GET", `/v1/executions${query({ ...filters(), limit: 100, cursor: cursors.at(-1) })}`);
    shown = page.data;
    const all = h("input", { type: "checkbox", "aria-label": "Select all shown",
      checked: shown.length > 0 && shown.every((x) => selected.has(x.id)) });
    all.addEventListener("change", () => {
      for (const x of shown) { if (all.checked) selected.add(x.id); else selected.delete(x.id); }
      for (const box of results.querySelectorAll("tbody input[type=checkbox]")) box.checked = all.checked;
    });
    fill(results,
      shown.length ? h("table", {},
        h("caption", { class: "muted" }, "Executions, newest first"),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, all),
          ["Execution", "Event", "Action", "Status", "Attempts", "Last error", "Created"].map((t) =>
            h("th", { scope: "col", class: t === "Attempts" ? "num" : null }, t)))),
        h("tbody", {}, shown.map(row)))
        : h("p", { class: "muted" }, "No executions match."),
      pager(cursors, page.next_cursor, load, ["Newer", "Older"]));
  };

  const eachSelected = async (verb, allowed, button) => run(button, async () => {
    const chosen = shown.filter((x) => selected.has(x.id));
    const eligible = chosen.filter((x) => allowed.has(x.status));
    if (!eligible.length) {
      notify(`None of the selected executions can be ${verb === "retry" ? "retried" : "cancelled"}.`, true);
      return;
    }
    const outcomes = await Promise.allSettled(eligible.map((x) => api("POST", `/v1/executions/${x.id}/${verb}`)));
    const failed = outcomes.filter((o) => o.status === "rejected");
    selected.clear();
    const done = verb === "retry" ? "Retried" : "Cancelled";
    const skipped = chosen.length - eligible.length;
    notify(`${done} ${eligible.length - failed.length} of ${chosen.length}${skipped ? ` (${skipped} not ${verb === "retry" ? "failed or cancelled" : "waiting"})` : ""}.`,
      failed.length > 0);
    await load();
  });
  retrySelected.addEventListener("click", () => eachSelected("retry", RETRYABLE, retrySelected));
  cancelSelected.addEventListener("click", () => eachSelected("cancel", CANCELLABLE, cancelSelected));
  retryAll.addEventListener("click", () => run(retryAll, async () => {
    const filter = filters();
    if (!filter.status) filter.status = "failed";
    if (!window.confirm(`Retry every ${filter.status} execution matching this filter?`)) return;
    const body = Object.fromEntries(Object.entries(filter).filter(([, v]) => v));
    let bulk = await api("POST", "/v1/executions/retry", body);
    fill(status, `Retrying in the background: ${bulk.retried} so far…`);
    while (bulk.status === "running") {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      bulk = await api("GET", `/v1/bulk-retries/${bulk.id}`);
      fill(status, `Retry ${bulk.status}: ${bulk.retried} retried.`);
    }
    await load();
  }));
  exportCsv.addEventListener("click", () => run(exportCsv, async () => {
    const body = Object.fromEntries(Object.entries(filters()).filter(([, v]) => v));
    const truncated = await download(`/v1/executions/export${query(body)}`, "executions.csv");
    notify(truncated ? "Exported the newest 100,000 (the filter selects more)." : "Exported.");
  }));

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    cursors = [null];
    selected.clear();
    setHashParams("/executions", filters());
    run(form.querySelector("button[type=submit]"), load);
  });
  fill(main, heading("Executions"), form,
    h("div", { class: "toolbar" }, retrySelected, cancelSelected, retryAll, exportCsv), status, results);
  await load();
  refreshOnChange(() => (cursors.length === 1 ? load().catch(() => {}) : undefined));
}

export async function executionPage(main, id) {
  const draw = async () => {
    const x = await api("GET", `/v1/executions/${id}`);
    const steps = x.steps ? await stepsOf(x) : null;
    const act = (verb) => (event) => run(event.currentTarget, async () => {
      await api("POST", `/v1/executions/${id}/${verb}`);
      notify(verb === "retry" ? "Retry sent." : "Cancelled.");
      await draw();
    });
    fill(main,
      heading(`Execution ${x.id}`),
      h("div", { class: "toolbar" }, badge(x.status),
        RETRYABLE.has(x.status) ? h("button", { type: "button", id: "retry-one", onclick: act("retry") },
          x.steps ? "Retry from the failed step" : "Retry") : null,
        CANCELLABLE.has(x.status) ? h("button", { type: "button", class: "danger", onclick: act("cancel") }, "Cancel") : null),
      h("section", { class: "panel" },
        h("dl", { class: "settings" },
          h("dt", {}, "Id"), h("dd", {}, h("code", {}, x.id)),
          h("dt", {}, "Event"), h("dd", {}, h("a", { href: `#/events/${encodeURIComponent(x.event_id)}` }, x.event_id)),
          h("dt", {}, "Action"), h("dd", {}, h("a", { href: `#/actions/${x.action_id}` }, x.action_id)),
          h("dt", {}, "Attempts"), h("dd", {}, `${x.attempts.length} of ${x.max_attempts}`),
          h("dt", {}, "Next attempt"), h("dd", {}, time(x.next_attempt_at)),
          h("dt", {}, "Last error"), h("dd", {}, x.last_error || "—"),
          h("dt", {}, "Created"), h("dd", {}, time(x.created_at)),
          h("dt", {}, "Finished"), h("dd", {}, time(x.finished_at)))),
      steps,
      x.steps ? null : h("section", { "aria-labelledby": "attempts-title" }, h("h2", { id: "attempts-title" }, "Attempts"),
        attemptList(x.attempts)));
  };
  await draw();
  refreshOnChange(() => draw().then(() => document.getElementById("page-title")?.focus({ preventScroll: true })).catch(() => {}));
}

/** A workflow run drawn as its steps: each with what it waits for, its state, attempts and output. */
async function stepsOf(x) {
  // The dependencies are the action's; an action deleted since shows the steps without them.
  const action = await api("GET", `/v1/actions/${x.action_id}`).catch(() => null);
  const declared = new Map((action?.handler?.steps || []).map((s) => [s.id, s.depends_on || []]));
  const label = (step) => (step === "@on_failure" ? "on_failure" : step);
  return h("section", { "aria-labelledby": "steps-title" }, h("h2", { id: "steps-title" }, "Steps"),
    table("The run's steps, in the order they started", [
      ["Step", (s) => h("code", {}, label(s.step))],
      ["Waits for", (s) => (declared.get(s.step) || []).join(", ") || "—"],
      ["Status", (s) => badge(s.status)],
      ["Attempts", (s) => String(s.attempts), { num: true }],
      ["Output", (s) => (s.output === null || s.output === undefined ? "—" : json(s.output))],
      ["Last error", (s) => s.last_error || "—"],
    ], x.steps),
    x.steps.filter((s) => s.history.length).map((s) => h("details", {},
      h("summary", {}, `Attempts of ${label(s.step)}`),
      attemptList(s.history.map((a) => ({ ...a, request_url: a.target }))))));
}
