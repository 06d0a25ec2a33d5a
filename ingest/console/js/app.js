// The console's shell: sign-in, the admin's tenant picker, and the hash router that opens
// one page at a time. Each page is a function that fills `main` and returns nothing.

import { api, session } from "./api.js";
import { fill, field, h, heading, notify, run } from "./dom.js";
import { startLive, stopLive, whenChanged } from "./live.js";
import { overviewPage } from "./overview.js";
import { actionPage, actionsPage } from "./actions.js";
import { newActionPage } from "./action_form.js";
import { eventPage, eventsPage } from "./events.js";
import { executionPage, executionsPage } from "./executions.js";
import { endpointsPage } from "./endpoints.js";

const main = document.getElementById("main");

/** Routes: a pattern over the hash's path and the page it opens. */
const ROUTES = [
  [/^\/overview$/, overviewPage],
  [/^\/actions$/, actionsPage],
  [/^\/actions\/new$/, newActionPage],
  [/^\/actions\/([^/]+)$/, actionPage],
  [/^\/events$/, eventsPage],
  [/^\/events\/([^/]+)$/, eventPage],
  [/^\/executions$/, executionsPage],
  [/^\/executions\/([^/]+)$/, executionPage],
  [/^\/endpoints$/, endpointsPage],
];

let who = null;

function signInPage() {
  const input = h("input", { type: "password", name: "key", autocomplete: "off", required: true,
    size: 44, "aria-describedby": "key-help" });
  const form = h("form", { class: "panel signin" },
    heading("Sign in to Herald"),
    field("API key or admin token", input),
    h("p", { id: "key-help", class: "muted" },
      "A tenant key (hk_…) shows that tenant. The admin token shows any tenant you pick. ",
      "The key stays in this tab only."),
    h("button", { class: "primary", type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    session.signIn(input.value.trim());
    await run(form.querySelector("button"), async () => {
      try {
        await start();
      } catch (error) {
        session.signOut();
        throw error;
      }
    });
  });
  document.getElementById("nav").hidden = true;
  fill(document.getElementById("session"));
  fill(main, form);
  input.focus();
}

/** The header's right side: who is signed in, the admin's tenant picker, live status. */
async function renderSession() {
  const box = document.getElementById("session");
  const out = h("button", { type: "button", onclick: signOut }, "Sign out");
  const live = h("span", { id: "live-status", class: "live off", role: "status" }, "Connecting");
  if (who.role === "tenant") {
    fill(box, h("span", {}, `Tenant: ${who.tenant.name}`), live, out);
    return;
  }
  const tenants = (await api("GET", "/v1/tenants")).data;
  const picker = h("select", { id: "tenant-picker", "aria-label": "Tenant" },
    h("option", { value: "" }, "Pick a tenant…"),
    tenants.map((t) => h("option", { value: t.id, selected: t.id === session.tenant },
      `${t.name} (…${t.id.slice(-6)})`)));
  picker.addEventListener("change", () => {
    session.actFor(picker.value || null);
    route();
  });
  fill(box, h("span", {}, "Admin"), field("Acting for tenant", picker), live, out);
}

function stopFollowing() {
  stopLive();
  liveFor = null;
}

function signOut() {
  stopFollowing();
  session.signOut();
  who = null;
  location.hash = "";
  signInPage();
}

async function start() {
  who = await api("GET", "/v1/whoami");
  if (who.role === "tenant") session.actFor(null);
  document.getElementById("nav").hidden = false;
  await renderSession();
  if (!location.hash || location.hash === "#") location.hash = "#/overview";
  await route();
}

function tenantChosen() {
  return who && (who.role === "tenant" || session.tenant);
}

async function route() {
  if (!who) return;
  const path = location.hash.replace(/^#/, "").split("?")[0] || "/overview";
  whenChanged(null);
  for (const link of document.querySelectorAll("#nav a")) {
    const current = path.startsWith(link.getAttribute("href").slice(1));
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!tenantChosen()) {
    stopFollowing();
    fill(main, heading("Pick a tenant"),
      h("p", {}, "Signed in with the admin token: pick the tenant to look at in the header."));
    document.getElementById("page-title").focus();
    return;
  }
  startLiveOnce();
  for (const [pattern, page] of ROUTES) {
    const match = path.match(pattern);
    if (match) {
      // Each visit draws into a view of its own: a page that finishes (or fails) after the
      // operator has moved on, or signed out, writes into a view no longer shown, not over
      // what is shown now.
      const view = h("div", { class: "view" }, h("p", { class: "muted" }, "Loading…"));
      fill(main, view);
      try {
        await page(view, ...match.slice(1).map(decodeURIComponent));
      } catch (error) {
        fill(view, heading("Something went wrong"), h("p", { class: "error-text" }, error.message));
      }
      if (view.isConnected) document.getElementById("page-title")?.focus();
      return;
    }
  }
  fill(main, heading("Not found"), h("p", {}, "No page here. ", h("a", { href: "#/overview" }, "Overview")));
}

let liveFor = null;
function startLiveOnce() {
  const key = `${session.key}|${session.tenant}`;
  if (liveFor === key) return;
  liveFor = key;
  startLive();
}

window.addEventListener("hashchange", route);
window.addEventListener("herald:signed-out", () => {
  // While signing in, the sign-in form reports the refusal itself.
  if (!who) return;
  notify("The key is no longer accepted (revoked?): sign in again.", true);
  signOut();
});

if (session.key) {
  start().catch((error) => {
    notify(error.message, true);
    signOut();
  });
} else {
  signInPage();
}
