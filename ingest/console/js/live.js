// Live updates: the tenant's overview from GET /v1/live, a stream of server-sent events.
// EventSource cannot send an Authorization header, so the stream is read with fetch; it
// reconnects with a growing pause after a drop. The open page registers one callback with
// `whenChanged`, replaced whenever another page opens, and refreshes what it shows.

import { headers } from "./api.js";

let controller = null;
let latest = null;
let pageListener = null;

export function latestOverview() { return latest; }

function setStatus(on) {
  const badge = document.getElementById("live-status");
  if (!badge) return;
  badge.className = on ? "live on" : "live off";
  badge.textContent = on ? "Live" : "Reconnecting";
}

function dispatch(block) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
  }
  if (name === "overview" && data.length) {
    latest = JSON.parse(data.join("\n"));
    setStatus(true);
    if (pageListener) pageListener(latest);
  } else if (name === "unavailable") {
    setStatus(false);
  }
}

async function follow(signal) {
  const response = await fetch("/v1/live", { headers: headers(), signal });
  if (!response.ok || !response.body) throw new Error(`live: ${response.status}`);
  setStatus(true);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      dispatch(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
    }
  }
}

/** Starts (or restarts, after a tenant switch) following the live overview. */
export function startLive() {
  stopLive();
  const own = new AbortController();
  controller = own;
  (async () => {
    let pause = 1000;
    while (!own.signal.aborted) {
      try {
        await follow(own.signal);
        pause = 1000;
      } catch (error) {
        if (own.signal.aborted) return;
      }
      setStatus(false);
      await new Promise((resolve) => setTimeout(resolve, pause));
      pause = Math.min(pause * 2, 30000);
    }
  })();
}

export function stopLive() {
  if (controller) controller.abort();
  controller = null;
  latest = null;
}

/** The open page's callback for a changed overview (null: none). */
export function whenChanged(callback) {
  pageListener = callback;
}

/** Calls `refresh` (debounced) when the overview changes, while this page is open. */
export function refreshOnChange(refresh) {
  let timer = null;
  whenChanged(() => {
    clearTimeout(timer);
    timer = setTimeout(refresh, 300);
  });
}
