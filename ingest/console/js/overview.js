// Overview: the tenant's last hour at a glance, redrawn whenever the live overview changes.

import { api } from "./api.js";
import { fill, h, heading, ms, percent, table } from "./dom.js";
import { latestOverview, whenChanged } from "./live.js";

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  for (const child of children) node.append(child);
  return node;
}

/** Per minute: events in (left bar) and executions finished (right bar: succeeded under
 *  failed). */
function chart(minutes) {
  const width = 600;
  const height = 140;
  const step = width / minutes.length;
  const half = Math.max(1, step / 2 - 1);
  const top = Math.max(1, ...minutes.map((m) => Math.max(m.events, m.succeeded + m.failed)));
  const scale = (value) => (value / top) * (height - 6);
  const bars = minutes.flatMap((m, index) => {
    const x = index * step;
    return [
      svg("rect", { class: "events", x, y: height - scale(m.events), width: half, height: scale(m.events) }),
      svg("rect", { class: "succeeded", x: x + half, y: height - scale(m.succeeded), width: half,
        height: scale(m.succeeded) }),
      svg("rect", { class: "failed", x: x + half, y: height - scale(m.succeeded + m.failed), width: half,
        height: scale(m.failed) }),
    ];
  });
  const total = minutes.reduce((sum, m) => sum + m.events, 0);
  const failed = minutes.reduce((sum, m) => sum + m.failed, 0);
  return svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none",
      role: "img", "aria-label": `Last hour: ${total} events, ${failed} failed executions; peak ${top} a minute` },
    ...bars);
}

function card(label, value, alert = false, id = null) {
  return h("div", { class: alert ? "card alert" : "card", id },
    h("div", { class: "label" }, label), h("div", { class: "value" }, value));
}

function render(node, overview) {
  const stats = overview.last_hour;
  const executions = stats.executions;
  const failed = executions.failed || 0;
  const recent = overview.minutes.slice(-5).reduce((sum, m) => sum + m.events, 0) / 5;
  fill(node,
    heading("Overview"),
    h("section", { class: "cards", "aria-label": "Last hour" },
      card("Events, last hour", overview.events_last_hour.toLocaleString(), false, "card-events"),
      card("Events a minute, last 5 min", recent.toFixed(1)),
      card("Success rate", percent(stats.success_rate), stats.success_rate !== null && stats.success_rate < 0.95,
        "card-success"),
      card("Failures, last hour", failed.toLocaleString(), failed > 0, "card-failures"),
      card("Open circuits", overview.open_circuits, overview.open_circuits > 0, "card-circuits"),
      card("Overdue retries", overview.overdue_retries, overview.overdue_retries > 0, "card-overdue"),
      card("Attempt p50 / p95", `${ms(stats.duration_ms.p50)} / ${ms(stats.duration_ms.p95)}`)),
    h("section", { class: "panel", "aria-labelledby": "throughput-title" },
      h("h2", { id: "throughput-title" }, "The last hour, minute by minute"),
      chart(overview.minutes),
      h("div", { class: "legend" }, h("span", { class: "l-events" }, "events in"),
        h("span", { class: "l-succeeded" }, "executions succeeded"),
        h("span", { class: "l-failed" }, "executions failed"))),
    h("section", { "aria-labelledby": "status-title" },
      h("h2", { id: "status-title" }, "Executions created in the last hour"),
      table("Executions by status", [
        ["Status", (row) => h("a", { href: `#/executions?status=${row[0]}` }, row[0].replace("_", " "))],
        ["Count", (row) => row[1].toLocaleString(), { num: true }],
      ], Object.entries(executions).filter(([status]) => status !== "total"))),
    h("p", { class: "muted" }, overview.latest_event_at
      ? `Latest event received ${new Date(overview.latest_event_at).toLocaleString()}.`
      : "No events yet."));
}

export async function overviewPage(main) {
  const overview = latestOverview() || (await api("GET", "/v1/overview"));
  render(main, overview);
  whenChanged((changed) => {
    const focused = document.activeElement?.id;
    render(main, changed);
    if (focused) document.getElementById(focused)?.focus();
  });
}
