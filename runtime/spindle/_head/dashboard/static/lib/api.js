// Calls to the head: the login cookie goes along on its own (same origin); state-changing calls add the
// CSRF header the head requires from cookie-authenticated requests. A 401 shows the login form.

export const CSRF_HEADER = "x-spindle-csrf";
let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function check(resp) {
  if (resp.ok) return resp;
  let message = `${resp.status} ${resp.statusText}`;
  try { message = (await resp.json()).error || message; } catch (_) { /* not JSON */ }
  if (resp.status === 401) onUnauthorized(message);
  throw new ApiError(resp.status, message);
}

export async function getJSON(path, { signal } = {}) {
  const resp = await fetch(path, { credentials: "same-origin", signal, headers: { Accept: "application/json" } });
  return (await check(resp)).json();
}

export async function getText(path, { signal } = {}) {
  const resp = await fetch(path, { credentials: "same-origin", signal });
  return (await check(resp)).text();
}

// Streams a chunked text response: calls onChunk(text) until the server ends it or signal aborts.
export async function streamText(path, onChunk, { signal } = {}) {
  const resp = await check(await fetch(path, { credentials: "same-origin", signal }));
  const reader = resp.body.getReader();
  const dec = new TextDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    onChunk(dec.decode(value, { stream: true }));
  }
}

export async function postJSON(path, body = {}) {
  const resp = await fetch(path, {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", [CSRF_HEADER]: "1" },
    body: JSON.stringify(body),
  });
  return (await check(resp)).json();
}

export async function login(token) {
  const resp = await fetch("/api/spindle/login", {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", [CSRF_HEADER]: "1" },
    body: JSON.stringify({ token }),
  });
  if (!resp.ok) {
    let message = `${resp.status}`;
    try { message = (await resp.json()).error || message; } catch (_) { /* not JSON */ }
    throw new ApiError(resp.status, message);
  }
}

export async function logout() {
  await fetch("/api/spindle/logout", { method: "POST", credentials: "same-origin", headers: { [CSRF_HEADER]: "1" } });
}

// Ray's state API rows: data.result.result
export async function listState(kind, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x)); else if (v !== undefined && v !== "") q.set(k, v);
  }
  const body = await getJSON(`/api/v0/${kind}?${q}`);
  return body.data.result;
}
