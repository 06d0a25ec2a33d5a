// Building the page: elements from data, never from HTML strings (no markup injection, and the
// content security policy forbids inline script anyway), and the formats every page shares.

/** An element: h("a", {href: "#/x"}, "text", child, ...). Children may be strings, nodes,
 *  arrays or null. Attributes starting with "on" become listeners. */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces everything in `node`. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** A page's heading, focused when the page opens so that keyboard and screen-reader users
 *  land on it. */
export function heading(text) {
  return h("h1", { tabindex: "-1", id: "page-title" }, text);
}

/** A typed id shortened for a table cell: its kind and its last, most varying, characters
 *  (the leading ones are a timestamp, alike for ids made together). The full id is the
 *  element's title. */
export function shortId(id) {
  const text = String(id);
  const short = text.length > 14 ? `${text.slice(0, 4)}…${text.slice(-6)}` : text;
  return h("span", { class: "mono", title: text }, short);
}

export function badge(text, kind = text) {
  return h("span", { class: `badge ${kind}` }, String(text).replace("_", " "));
}

export function time(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return h("time", { datetime: iso, title: iso }, date.toLocaleString());
}

export function percent(ratio) {
  return ratio === null || ratio === undefined ? "—" : `${(ratio * 100).toFixed(1)}%`;
}

export function ms(value) {
  return value === null || value === undefined ? "—" : `${Math.round(value)} ms`;
}

export function json(value) {
  return h("pre", {}, JSON.stringify(value, null, 2));
}

/** A table: columns are [heading, row => cell, {num: true}?]. */
export function table(caption, columns, rows, empty = "Nothing here.") {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h("table", {},
    h("caption", { class: "muted", style: null }, caption),
    h("thead", {}, h("tr", {}, columns.map(([title, , opts]) =>
      h("th", { scope: "col", class: opts?.num ? "num" : null }, title)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, columns.map(([, cell, opts]) =>
      h("td", { class: opts?.num ? "num" : null }, cell(row)))))));
}

/** A labelled form control. */
export function field(label, control) {
  return h("label", {}, label, control);
}

export function select(name, options, value) {
  return h("select", { name }, options.map(([optionValue, text]) =>
    h("option", { value: optionValue, selected: optionValue === value }, text)));
}

/** An RFC 3339 time as a datetime-local input's value (local time, to the minute). */
export function localTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  const offset = date.getTimezoneOffset() * 60000;
  return new Date(date.getTime() - offset).toISOString().slice(0, 16);
}

/** The value of a datetime-local input as RFC 3339, or undefined. */
export function rfc3339(localValue) {
  return localValue ? new Date(localValue).toISOString() : undefined;
}

/** A short notice at the bottom of the screen, read out by screen readers. */
export function notify(message, bad = false) {
  const region = document.getElementById("notice");
  const line = h("p", { class: bad ? "bad" : null }, message);
  region.append(line);
  setTimeout(() => line.remove(), bad ? 9000 : 4000);
}

/** Runs an action from a button: disabled while it runs, errors shown, not thrown. */
export async function run(button, work) {
  if (button) button.disabled = true;
  try {
    return await work();
  } catch (error) {
    notify(error.message || String(error), true);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

/** The parameters after `?` in the hash (`#/executions?status=failed`): a page's filters, so
 *  that a filtered view has a link of its own. */
export function hashParams() {
  const [, search = ""] = location.hash.split("?");
  return new URLSearchParams(search);
}

/** Puts a page's filters in the hash without reopening the page. */
export function setHashParams(path, params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(name, value);
  }
  const text = search.toString();
  history.replaceState(null, "", `#${path}${text ? `?${text}` : ""}`);
}

/** Cursor paging for a listing: `cursors` is the stack of cursors of the pages opened so far
 *  (null for the first); the buttons move along it and call `load`. */
export function pager(cursors, nextCursor, load, [back, forward] = ["Previous page", "Next page"]) {
  return h("div", { class: "toolbar" },
    cursors.length > 1 ? h("button", { type: "button", onclick: () => { cursors.pop(); load(); } }, back) : null,
    nextCursor ? h("button", { type: "button", onclick: () => { cursors.push(nextCursor); load(); } }, forward) : null);
}
