// Actions: the list with filters and search, and one action with its settings, stats, recent
// executions, lifecycle buttons, editor and the condition-by-condition test.

import { api, query } from "./api.js";
import { actionForm } from "./action_form.js";
import { badge, field, pager, shortId, fill, h, hashParams, heading, json, ms, notify, percent, run, select,
  setHashParams, table, time } from "./dom.js";
import { handlerSummary, handlerTypes } from "./handlers.js";
import { refreshOnChange } from "./live.js";

function lifecycle(action) {
  if (action.deleted_at) return badge("deleted");
  return action.enabled ? badge("enabled") : badge("disabled");
}

export async function actionsPage(main) {
  const params = hashParams();
  const types = await handlerTypes();
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter actions" },
    field("Search name or description", h("input", { type: "search", name: "q", value: params.get("q") || "" })),
    field("Event type", h("input", { name: "event_type", placeholder: "order.created",
      value: params.get("event_type") || "" })),
    field("State", select("enabled", [["", "any"], ["true", "enabled"], ["false", "disabled"]],
      params.get("enabled") || "")),
    field("Handler", select("handler_type", [["", "any"], ...types.map(({ type }) => [type, type])],
      params.get("handler_type") || "")),
    h("label", { class: "inline" }, h("input", { type: "checkbox", name: "include_deleted", value: "true",
      checked: params.get("include_deleted") === "true" }), "Include deleted"),
    h("button", { type: "submit" }, "Filter"));
  const results = h("div", { id: "action-results" });
  fill(main, heading("Actions"),
    h("div", { class: "toolbar" }, h("a", { href: "#/actions/new", id: "new-action" }, "New action")),
    form, results);

  let cursors = [null];
  const filters = () => Object.fromEntries(new FormData(form).entries());
  const load = async () => {
    const page = await api("GET", `/v1/actions${query({ ...filters(), limit: 50, cursor: cursors.at(-1) })}`);
    fill(results,
      table("Actions", [
        ["Name", (a) => h("a", { href: `#/actions/${a.id}` }, a.name)],
        ["Event types", (a) => h("span", { class: "mono" }, a.event_types.join(", "))],
        ["Handler", (a) => handlerSummary(types, a.handler)],
        ["Priority", (a) => a.priority, { num: true }],
        ["Mode", (a) => a.mode],
        ["State", lifecycle],
        ["Updated", (a) => time(a.updated_at)],
      ], page.data, "No actions match."),
      pager(cursors, page.next_cursor, load));
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    cursors = [null];
    setHashParams("/actions", filters());
    run(form.querySelector("button[type=submit]"), load);
  });
  await load();
  refreshOnChange(() => load().catch(() => {}));
}

function settings(action, types) {
  const rows = [
    ["Id", h("code", {}, action.id)],
    ["Description", action.description || "—"],
    ["Event types", h("code", {}, action.event_types.join(", "))],
    ["Source", action.source || "any"],
    ["Priority", action.priority],
    ["Mode", action.mode],
    ["Handler", handlerSummary(types, action.handler)],
    ["Retry", h("code", {}, JSON.stringify(action.retry))],
    ["Rate limit", action.rate_limit_per_s ? `${action.rate_limit_per_s}/s` : "none"],
    ["Max concurrency", action.max_concurrency ?? "none"],
    ["State", [lifecycle(action), action.disabled_reason ? ` ${action.disabled_reason}` : ""]],
    ["Revision", action.revision],
    ["Created", time(action.created_at)],
    ["Updated", time(action.updated_at)],
  ];
  return h("dl", { class: "settings" }, rows.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
}

function statsPanel(stats) {
  const e = stats.executions;
  return h("dl", { class: "settings", id: "action-stats" },
    h("dt", {}, "Executions (24 h)"), h("dd", {}, e.total),
    h("dt", {}, "Succeeded / failed"), h("dd", {}, `${e.succeeded} / ${e.failed}`),
    h("dt", {}, "Waiting"), h("dd", {}, `${e.pending + e.processing + e.retry_scheduled}`),
    h("dt", {}, "Success rate"), h("dd", {}, percent(stats.success_rate)),
    h("dt", {}, "Attempts per success"), h("dd", {}, stats.attempts_per_success?.toFixed(2) ?? "—"),
    h("dt", {}, "Duration p50 / p95"), h("dd", {}, `${ms(stats.duration_ms.p50)} / ${ms(stats.duration_ms.p95)}`));
}

export function executionRows(executions, caption) {
  return table(caption, [
    ["Execution", (x) => h("a", { href: `#/executions/${x.id}` }, shortId(x.id))],
    ["Event", (x) => h("a", { href: `#/events/${encodeURIComponent(x.event_id)}` }, x.event_id)],
    ["Status", (x) => badge(x.status)],
    ["Attempts", (x) => `${x.attempts}/${x.max_attempts}`, { num: true }],
    ["Last error", (x) => x.last_error || ""],
    ["Created", (x) => time(x.created_at)],
  ], executions, "No executions yet.");
}

/** One condition of the explanation, nested for any/all/not. */
function explained(node) {
  const mark = badge(node.held ? "holds" : "fails", node.held ? "yes" : "no");
  if (node.any) return h("li", {}, mark, " any of:", h("ul", { class: "explain" }, node.any.map(explained)));
  if (node.all) return h("li", {}, mark, " all of:", h("ul", { class: "explain" }, node.all.map(explained)));
  if (node.not) return h("li", {}, mark, " not:", h("ul", { class: "explain" }, explained(node.not)));
  return h("li", {}, mark, " ", h("code", {}, node.path), ` ${node.op} `,
    node.value !== undefined ? h("code", {}, JSON.stringify(node.value)) : "",
    h("span", { class: "muted" }, ` (event has ${JSON.stringify(node.actual?.length === 1 ? node.actual[0] : node.actual)})`));
}

function report(result) {
  const items = [
    h("li", {}, badge(result.event_type.held ? "holds" : "fails", result.event_type.held ? "yes" : "no"),
      ` event type `, h("code", {}, result.event_type.actual), " against ",
      h("code", {}, result.event_type.patterns.map((p) => p.pattern).join(", "))),
  ];
  if (result.source) {
    items.push(h("li", {}, badge(result.source.held ? "holds" : "fails", result.source.held ? "yes" : "no"),
      ` source is `, h("code", {}, JSON.stringify(result.source.actual)), `, wants `,
      h("code", {}, result.source.expected)));
  }
  if (!result.live) items.push(h("li", {}, badge("fails", "no"), " the action is disabled or deleted"));
  const delivery = result.delivery;
  return h("div", { id: "test-result", role: "status" },
    h("p", {}, h("strong", {}, result.matched ? "Would match." : "Would not match.")),
    h("ul", { class: "explain" }, items, result.conditions.map(explained)),
    preview(result),
    delivery ? [h("h3", {}, "Test delivery"), json(delivery)] : null);
}

// What the action would send for the test event, every template rendered, secrets masked.
function preview(result) {
  if (result.render_error) {
    const { field, message } = result.render_error;
    return [h("h3", {}, "Would not send"), h("p", { id: "test-preview" }, `${field}: ${message}`)];
  }
  const rendered = result.rendered;
  if (!rendered) return null;
  const request = rendered.request;
  const text = request
    ? [`${request.method} ${request.url}`, ...Object.entries(request.headers).map(([k, v]) => `${k}: ${v}`),
      "", request.body].join("\n")
    : JSON.stringify(rendered.email ?? rendered, null, 2);
  return [h("h3", {}, "Would send"), h("pre", { id: "test-preview" }, text)];
}

function testForm(action) {
  const sample = action.event_types[0].replace(/#|\*/g, "example");
  const body = h("textarea", { name: "event", rows: 8, id: "test-event" },
    JSON.stringify({ type: sample, source: action.source || undefined, data: {} }, null, 2));
  const send = h("input", { type: "checkbox", name: "send" });
  const out = h("div", {});
  const form = h("form", { class: "panel", "aria-labelledby": "test-title" },
    h("h2", { id: "test-title" }, "Test with an event"),
    field("Event (JSON)", body),
    h("label", { class: "inline" }, send, "Also send one real, signed delivery (not recorded)"),
    h("div", { class: "toolbar" }, h("button", { type: "submit", class: "primary" }, "Run test")),
    out);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run(form.querySelector("button"), async () => {
      let parsed;
      try { parsed = JSON.parse(body.value); } catch (error) { throw new Error(`The event is not JSON: ${error.message}`); }
      const result = await api("POST", `/v1/actions/${action.id}/test`, { event: parsed, send: send.checked });
      fill(out, report(result));
    });
  });
  return form;
}

export async function actionPage(main, id) {
  const [action, stats, recent, types] = await Promise.all([
    api("GET", `/v1/actions/${id}`),
    api("GET", `/v1/actions/${id}/stats`),
    api("GET", `/v1/executions${query({ action_id: id, limit: 20 })}`),
    handlerTypes(),
  ]);
  const reopen = () => actionPage(main, id).then(() => document.getElementById("page-title")?.focus());
  const lifecycleCall = (path, message) => async (event) => run(event.currentTarget, async () => {
    await api("POST", `/v1/actions/${id}/${path}`);
    await reopen();
    notify(message);
  });
  const buttons = action.deleted_at
    ? [h("button", { type: "button", onclick: lifecycleCall("restore", "Restored.") }, "Restore")]
    : [
      action.enabled
        ? h("button", { type: "button", onclick: lifecycleCall("disable", "Disabled.") }, "Disable")
        : h("button", { type: "button", onclick: lifecycleCall("enable", "Enabled.") }, "Enable"),
      h("button", { type: "button", id: "edit-action", onclick: async () => fill(editor, await actionForm(action, reopen)) }, "Edit"),
      h("button", { type: "button", class: "danger", onclick: (event) => run(event.currentTarget, async () => {
        if (!window.confirm(`Delete ${action.name}? It can be restored.`)) return;
        await api("DELETE", `/v1/actions/${id}`);
        await reopen();
        notify("Deleted (restorable).");
      }) }, "Delete"),
    ];
  const editor = h("div", {});
  const recentBox = h("div", {}, executionRows(recent.data, "Recent executions"));
  fill(main,
    heading(action.name),
    h("div", { class: "toolbar" }, lifecycle(action), buttons,
      h("a", { href: `#/executions?action_id=${id}` }, "All executions")),
    editor,
    h("div", { class: "grid2" },
      h("section", { class: "panel", "aria-labelledby": "settings-title" },
        h("h2", { id: "settings-title" }, "Settings"), settings(action, types),
        action.conditions.length ? [h("h3", {}, "Conditions"), json(action.conditions)] : null),
      h("section", { class: "panel", "aria-labelledby": "stats-title" },
        h("h2", { id: "stats-title" }, "Last 24 hours"), statsPanel(stats))),
    testForm(action),
    h("section", { "aria-labelledby": "recent-title" }, h("h2", { id: "recent-title" }, "Recent executions"), recentBox));
  refreshOnChange(async () => {
    const latest = await api("GET", `/v1/executions${query({ action_id: id, limit: 20 })}`).catch(() => null);
    if (latest) fill(recentBox, executionRows(latest.data, "Recent executions"));
  });
}
