// Talking to Herald's API with the key the operator signed in with. The key lives in
// sessionStorage: gone when the tab closes, never in a cookie (so no request is sent with it
// unless this code adds it) and never in a URL.

const KEY = "herald.key";
const TENANT = "herald.tenant";

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  get tenant() { return sessionStorage.getItem(TENANT); },
  signIn(key) { sessionStorage.setItem(KEY, key); },
  /** The tenant the admin token acts for (sent as Herald-Tenant). */
  actFor(tenant) {
    if (tenant) sessionStorage.setItem(TENANT, tenant);
    else sessionStorage.removeItem(TENANT);
  },
  signOut() { sessionStorage.removeItem(KEY); sessionStorage.removeItem(TENANT); },
};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function headers(extra = {}) {
  const all = { ...extra };
  if (session.key) all.Authorization = `Bearer ${session.key}`;
  if (session.tenant) all["Herald-Tenant"] = session.tenant;
  return all;
}

/** Calls the API; answers the JSON body, or throws an ApiError with the contract's code. */
export async function api(method, path, body, extraHeaders = {}) {
  const init = { method, headers: headers(extraHeaders) };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!response.ok) {
    const error = data && data.error ? data.error : { code: "http_error", message: text };
    if (response.status === 401) window.dispatchEvent(new CustomEvent("herald:signed-out"));
    throw new ApiError(response.status, error.code, `${error.message} (${response.status} ${error.code})`);
  }
  return data;
}

/** A query string of the given parameters, leaving out empty ones. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(name, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** Downloads what `path` answers as a file. */
export async function download(path, filename) {
  const response = await fetch(path, { headers: headers() });
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    throw new ApiError(response.status, data.error?.code, data.error?.message || response.statusText);
  }
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  return response.headers.get("Herald-Truncated") === "true";
}
