// The console's one way to the gateway: the public HTTP API, with the signed-in user's bearer token.
// The token lives in sessionStorage: it is gone when the tab closes, and other tabs do not share it.

const TOKEN_KEY = "console.token";

export const session = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  signIn(token) {
    sessionStorage.setItem(TOKEN_KEY, token.trim());
  },
  signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

// An answer of the API that is not a success: its status and the fields of {"error": {...}}.
export class ApiError extends Error {
  constructor(status, error) {
    super(error.message || `The request failed (${status}).`);
    this.status = status;
    this.code = error.code || "error";
    this.field = error.field || null;
    this.details = error.details || null;
  }
}

// A request the gateway does not answer within this long is given up (an ApiError with code "timeout"), so
// a screen never shows "Loading…" for ever; the gateway says how long (/console/settings.json).
let timeoutMs = 15000;
export function setRequestTimeout(seconds) {
  if (seconds > 0) timeoutMs = seconds * 1000;
}

// Called with the number of requests under way, so the page can show that it is loading.
let onBusyChange = () => {};
let pending = 0;
export function watchBusy(callback) {
  onBusyChange = callback;
}

// Called when the token is refused (expired, or signed by a key no longer accepted): the page signs out.
let onSignedOut = () => {};
export function watchSignOut(callback) {
  onSignedOut = callback;
}

function url(path, query) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") params.set(name, value);
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

async function send(method, path, { body, query, headers } = {}) {
  const allHeaders = { ...headers };
  if (session.token) allHeaders.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) allHeaders["Content-Type"] = "application/json";
  pending += 1;
  onBusyChange(pending);
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    return await fetch(url(path, query), {
      method,
      headers: allHeaders,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: controller.signal,
    });
  } catch {
    if (controller.signal.aborted) {
      throw new ApiError(0, { code: "timeout",
        message: `The gateway did not answer within ${timeoutMs / 1000} seconds; try again.` });
    }
    throw new ApiError(0, { code: "network_error", message: "The gateway cannot be reached; try again." });
  } finally {
    clearTimeout(timer);
    pending -= 1;
    onBusyChange(pending);
  }
}

async function refusal(response) {
  let error = {};
  try {
    error = (await response.json()).error || {};
  } catch {
    // Not JSON (a proxy's page, say): the status says enough.
  }
  const failure = new ApiError(response.status, error);
  if (response.status === 401 && session.token) {
    session.signOut();
    onSignedOut(failure);
  }
  return failure;
}

// The JSON answer of `method path`, or null for a 204; an ApiError for any refusal.
export async function api(method, path, options = {}) {
  const response = await send(method, path, options);
  if (!response.ok) throw await refusal(response);
  return response.status === 204 ? null : response.json();
}

export const get = (path, query) => api("GET", path, { query });
export const post = (path, body, options = {}) => api("POST", path, { ...options, body: body ?? {} });
export const patch = (path, body) => api("PATCH", path, { body });
export const put = (path, body) => api("PUT", path, { body });
export const del = (path) => api("DELETE", path);

// A fresh Idempotency-Key: a retry of the same click must not create or spend twice.
export function idempotencyKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

// Downloads (format=csv or json) need the token too, which a plain link cannot send: the file is fetched,
// then handed to the browser as a download under `filename`. Returns its text, for the page to report on.
export async function download(path, query, filename) {
  const response = await send("GET", path, { query });
  if (!response.ok) throw await refusal(response);
  const blob = await response.blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
  return blob.text();
}

// Every page of a list, following next_cursor (the lists the console shows in full: small by nature).
export async function all(path, query = {}) {
  const items = [];
  let cursor = null;
  do {
    const page = await get(path, { ...query, limit: 200, cursor });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}
