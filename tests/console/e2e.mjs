// The operator console, end to end, in Debian's headless Chromium against a running stack
// (started by tests/it/console.rs, which passes its addresses and keys in the environment).
//
// An operator signs in, creates an action, tests its condition, sees an event delivered, sees
// an endpoint fail and its circuit open, resets the circuit with the keyboard, retries the
// failed executions from the console and sees them succeed, exports them as CSV, and takes
// the action through disable, enable, delete and restore. The
// webhook receiver is this script's own (the remote party is the one thing the suite fakes).
// Every page is checked with axe-core for accessibility problems, the browser console must
// stay free of errors, and a screenshot of each page is written to $SCREENSHOTS.

import { createServer } from "node:http";
import { readFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

const BASE = need("HERALD_URL");
const TENANT_KEY = need("HERALD_TENANT_KEY");
const TENANT_ID = need("HERALD_TENANT_ID");
const TENANT_NAME = need("HERALD_TENANT_NAME");
const ADMIN_TOKEN = need("HERALD_ADMIN_TOKEN");
const SCREENSHOTS = process.env.SCREENSHOTS || "";
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const WAIT = 30_000;

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

function step(text) {
  console.log(`--> ${text}`);
}

// Nothing here may hang the suite: a stuck run fails after three minutes.
setTimeout(() => {
  console.error("the console test took longer than 3 minutes");
  process.exit(2);
}, 180_000).unref();

/** The remote party: answers 200, or 500 while `failing`; counts what it got. */
function startReceiver() {
  const receiver = { failing: false, received: [] };
  const server = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => { body += chunk; });
    request.on("end", () => {
      receiver.received.push({ headers: request.headers, body });
      response.writeHead(receiver.failing ? 500 : 200, { "content-type": "application/json" });
      response.end(JSON.stringify(receiver.failing ? { error: "crm is down" } : { ok: true }));
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => {
    receiver.url = `http://127.0.0.1:${server.address().port}/hooks/orders`;
    receiver.close = () => server.close();
    resolve(receiver);
  }));
}

async function sendEvent(event) {
  const response = await fetch(`${BASE}/v1/events`, {
    method: "POST",
    headers: { authorization: `Bearer ${TENANT_KEY}`, "content-type": "application/json" },
    body: JSON.stringify(event),
  });
  if (response.status !== 202) throw new Error(`sending ${event.id}: ${response.status} ${await response.text()}`);
}

/** Fails on any accessibility violation axe-core rates serious or critical. */
async function checkAccessibility(page, name) {
  const violations = await page.evaluate(async (source) => {
    // eslint-disable-next-line no-eval
    (0, eval)(source);
    const result = await window.axe.run(document, { resultTypes: ["violations"] });
    return result.violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join("; ")}`);
  }, AXE);
  if (violations.length) throw new Error(`accessibility problems on ${name}:\n  ${violations.join("\n  ")}`);
}

async function screenshot(page, name) {
  await checkAccessibility(page, name);
  if (!SCREENSHOTS) return;
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: `${SCREENSHOTS}/${name}.png`, fullPage: true });
}

/** Presses Tab until the focused element's accessible text matches, then Enter: proves the
 *  control is reachable and usable by keyboard alone. */
async function tabToAndPress(page, pattern, presses = 80) {
  for (let i = 0; i < presses; i += 1) {
    await page.keyboard.press("Tab");
    const focused = await page.evaluate(() => {
      const el = document.activeElement;
      return el ? `${el.getAttribute("aria-label") || ""} ${el.textContent || ""}`.trim() : "";
    });
    if (pattern.test(focused)) {
      await page.keyboard.press("Enter");
      return;
    }
  }
  throw new Error(`no control matching ${pattern} reachable with Tab`);
}

async function nav(page, name) {
  await page.getByRole("navigation", { name: "Pages" }).getByRole("link", { name }).click();
  await page.getByRole("heading", { level: 1, name }).waitFor({ timeout: WAIT });
}

async function main() {
  const receiver = await startReceiver();
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    // Without the background-networking flags Chromium keeps calling Google's hosts, which
    // this kind of machine refuses.
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const problems = [];
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, acceptDownloads: true });
  const page = await context.newPage();
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console error: ${message.text()}`);
  });
  page.on("pageerror", (error) => problems.push(`uncaught: ${error.message}`));
  page.on("dialog", (dialog) => dialog.accept());

  try {
    step("a tenant key signs in to its own tenant");
    await page.goto(`${BASE}/ui/`);
    await page.getByLabel("API key or admin token").fill(TENANT_KEY);
    await page.keyboard.press("Enter");
    await page.getByText(`Tenant: ${TENANT_NAME}`).waitFor({ timeout: WAIT });
    await page.getByRole("heading", { level: 1, name: "Overview" }).waitFor();
    await page.getByRole("button", { name: "Sign out" }).click();

    step("the admin token signs in and picks the tenant");
    await page.getByLabel("API key or admin token").fill(ADMIN_TOKEN);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Pick a tenant" }).waitFor({ timeout: WAIT });
    await page.getByLabel("Tenant", { exact: true }).selectOption(TENANT_ID);
    await page.getByRole("heading", { level: 1, name: "Overview" }).waitFor({ timeout: WAIT });

    step("create an action");
    await nav(page, "Actions");
    await page.getByRole("link", { name: "New action" }).click();
    await page.getByLabel("Name").fill("orders-to-crm");
    await page.getByLabel(/^Event types/).fill("order.created");
    await page.getByLabel("Webhook URL").fill(receiver.url);
    await page.getByLabel(/^Retry policy/).fill('{"max_attempts": 1}');
    await page.getByLabel("Description").fill("Sends new orders to the CRM");
    await page.getByLabel(/^Webhook headers/).fill('{"authorization": "Bearer crm-secret-1", "x-team": "sales"}');
    await screenshot(page, "new-action");
    await page.getByRole("button", { name: "Create action" }).click();
    await page.getByText("Signing secret, shown this once").waitFor({ timeout: WAIT });
    await page.getByRole("link", { name: "Open the action" }).click();
    await page.getByRole("heading", { level: 1, name: "orders-to-crm" }).waitFor({ timeout: WAIT });

    step("edit its conditions and test them, condition by condition");
    await page.getByRole("button", { name: "Edit" }).click();
    await page.getByLabel(/^Conditions/).fill('[{"path": "data.amount", "op": "gt", "value": 100}]');
    await page.getByRole("button", { name: "Save changes" }).click();
    await page.getByText("Saved.").waitFor({ timeout: WAIT });
    await page.getByRole("heading", { name: "Conditions" }).waitFor({ timeout: WAIT });
    // The credential header is never shown again, in the page or in its edit form (which
    // sends the mask back on save, and the stored value is kept: see the delivery below).
    await page.getByRole("button", { name: "Edit" }).click();
    const shownHeaders = await page.getByLabel(/^Webhook headers/).inputValue();
    if (!shownHeaders.includes('"***"') || !shownHeaders.includes("sales")) throw new Error(`headers shown: ${shownHeaders}`);
    if ((await page.content()).includes("crm-secret-1")) throw new Error("the console shows a credential");
    await page.getByRole("button", { name: "Save changes" }).click();
    await page.getByText("Saved.").waitFor({ timeout: WAIT });
    const testEvent = page.getByLabel("Event (JSON)");
    await testEvent.fill('{"type": "order.created", "data": {"amount": 50}}');
    await page.getByRole("button", { name: "Run test" }).click();
    await page.getByText("Would not match.").waitFor({ timeout: WAIT });
    const failing = await page.locator("#test-result li", { hasText: "data.amount" }).innerText();
    if (!/fails/.test(failing) || !/50/.test(failing)) throw new Error(`explanation: ${failing}`);
    await testEvent.fill('{"type": "order.created", "data": {"amount": 500}}');
    await page.getByRole("button", { name: "Run test" }).click();
    await page.getByText("Would match.").waitFor({ timeout: WAIT });
    const rendered = await page.locator("#test-preview").innerText();
    if (!/^POST http/.test(rendered) || !/authorization: \*\*\*/i.test(rendered) || /crm-secret-1/.test(rendered)) {
      throw new Error(`the render preview: ${rendered}`);
    }
    await screenshot(page, "action");

    step("an event is delivered, and the event page shows it live");
    await nav(page, "Events");
    await sendEvent({ id: "order-1", type: "order.created", source: "shop", data: { amount: 500 } });
    await page.getByLabel(/^Type/).fill("order.*");
    await page.getByRole("button", { name: "Search" }).click();
    await page.getByRole("link", { name: "order.created" }).first().click({ timeout: WAIT });
    await page.getByRole("heading", { level: 1, name: "Event order.created" }).waitFor({ timeout: WAIT });
    await page.locator("#event-executions .badge.succeeded").waitFor({ timeout: WAIT });
    await page.getByText("HTTP 200").first().waitFor({ timeout: WAIT });
    await screenshot(page, "event");
    if (!receiver.received.some((r) => r.headers["webhook-signature"])) throw new Error("no signed webhook arrived");
    if (!receiver.received.every((r) => r.headers.authorization === "Bearer crm-secret-1")) {
      throw new Error("the stored credential did not go with the webhook");
    }

    step("the endpoint fails: failures and the open circuit show");
    receiver.failing = true;
    for (const id of ["order-2", "order-3", "order-4"]) {
      await sendEvent({ id, type: "order.created", source: "shop", data: { amount: 700 } });
    }
    await nav(page, "Events");
    await page.locator("tbody tr").nth(3).waitFor({ timeout: WAIT });
    await screenshot(page, "events");
    await nav(page, "Executions");
    await page.getByLabel("Status").selectOption("failed");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.locator('tr[data-status="failed"]').nth(2).waitFor({ timeout: WAIT });
    await nav(page, "Endpoints");
    await page.locator("#endpoint-results .badge.open").waitFor({ timeout: WAIT });
    await screenshot(page, "endpoints");
    await nav(page, "Overview");
    await page.locator("#card-circuits .value", { hasText: "1" }).waitFor({ timeout: WAIT });
    await page.locator("#card-failures .value", { hasText: "3" }).waitFor({ timeout: WAIT });
    await screenshot(page, "overview");

    step("the endpoint recovers: reset its circuit with the keyboard");
    receiver.failing = false;
    await page.locator("#page-title").focus();
    await tabToAndPress(page, /^Endpoints$/);
    await page.getByRole("heading", { level: 1, name: "Endpoints" }).waitFor({ timeout: WAIT });
    await tabToAndPress(page, /^Reset http/);
    await page.locator("#endpoint-results .badge.closed").waitFor({ timeout: WAIT });

    step("retry the failed executions from the console and see them succeed");
    await nav(page, "Executions");
    await page.getByLabel("Status").selectOption("failed");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.locator('tr[data-status="failed"]').nth(2).waitFor({ timeout: WAIT });
    await page.getByLabel("Select all shown").check();
    await page.getByRole("button", { name: "Retry selected" }).click();
    await page.getByText("Retried 3 of 3.").waitFor({ timeout: WAIT });
    await page.getByLabel("Status").selectOption("succeeded");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.locator('tr[data-status="succeeded"]').nth(3).waitFor({ timeout: WAIT });
    await screenshot(page, "executions");

    step("export them as CSV");
    const [download] = await Promise.all([
      page.waitForEvent("download", { timeout: WAIT }),
      page.getByRole("button", { name: "Export CSV" }).click(),
    ]);
    const csv = readFileSync(await download.path(), "utf8").trim().split(/\r\n/);
    if (!csv[0].startsWith("id,event_id,action_id,status") || csv.length !== 5
      || !csv.slice(1).every((line) => line.includes(",succeeded,"))) {
      throw new Error(`the export:\n${csv.join("\n")}`);
    }

    step("one execution with its attempts");
    await page.locator('tr[data-status="succeeded"] a[href^="#/executions/"]').first().click();
    await page.getByRole("heading", { level: 1, name: /^Execution exe_/ }).waitFor({ timeout: WAIT });
    await page.getByText("HTTP 200").first().waitFor({ timeout: WAIT });
    await checkAccessibility(page, "execution");

    step("a workflow run, drawn as its steps with their outputs");
    const workflow = await fetch(`${BASE}/v1/actions`, {
      method: "POST",
      headers: { authorization: `Bearer ${TENANT_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "signup-flow", event_types: ["signup.done"], handler: { type: "workflow",
        steps: [
          { id: "lookup", handler: { type: "webhook", url: receiver.url } },
          { id: "score", depends_on: ["lookup"], set: { ok: "{{ steps.lookup.output.body.ok }}" } },
          { id: "notify", depends_on: ["score"], handler: { type: "webhook", url: receiver.url } }] } }),
    });
    if (workflow.status !== 201) throw new Error(`creating the workflow: ${workflow.status} ${await workflow.text()}`);
    await sendEvent({ id: "signup-1", type: "signup.done" });
    let run = null;
    for (let i = 0; i < 300 && !run; i += 1) {
      const event = await (await fetch(`${BASE}/v1/events/signup-1`,
        { headers: { authorization: `Bearer ${TENANT_KEY}` } })).json();
      run = (event.executions || []).find((x) => x.status === "succeeded");
      if (!run) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    if (!run) throw new Error("the workflow run did not succeed");
    await page.goto(`${BASE}/ui/#/executions/${run.id}`);
    await page.getByRole("heading", { level: 2, name: "Steps" }).waitFor({ timeout: WAIT });
    for (const id of ["lookup", "score", "notify"]) {
      await page.getByRole("cell", { name: id, exact: true }).first().waitFor({ timeout: WAIT });
    }
    await page.getByText('"ok": true').first().waitFor({ timeout: WAIT });
    await checkAccessibility(page, "workflow run");

    step("the actions list");
    await nav(page, "Actions");
    await page.getByRole("link", { name: "orders-to-crm" }).waitFor({ timeout: WAIT });
    await screenshot(page, "actions");

    step("disable, enable, delete and restore the action");
    await page.getByRole("link", { name: "orders-to-crm" }).click();
    await page.getByRole("heading", { level: 1, name: "orders-to-crm" }).waitFor({ timeout: WAIT });
    for (const [button, then] of [["Disable", "Enable"], ["Enable", "Disable"], ["Delete", "Restore"],
      ["Restore", "Disable"]]) {
      await page.getByRole("button", { name: button, exact: true }).click();
      await page.getByRole("button", { name: then, exact: true }).waitFor({ timeout: WAIT });
    }

    if (problems.length) throw new Error(`the browser reported:\n  ${problems.join("\n  ")}`);
    console.log("console end to end: passed");
  } catch (error) {
    if (SCREENSHOTS) await page.screenshot({ path: `${SCREENSHOTS}/failure.png`, fullPage: true }).catch(() => {});
    console.error(`at ${page.url()}`);
    if (problems.length) console.error(`the browser reported:\n  ${problems.join("\n  ")}`);
    throw error;
  } finally {
    await browser.close();
    receiver.close();
  }
}

main().then(() => process.exit(0), (error) => {
  console.error(error.stack || String(error));
  process.exit(1);
});
