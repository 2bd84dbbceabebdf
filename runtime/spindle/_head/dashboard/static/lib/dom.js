// Tiny DOM helpers: build elements without innerHTML (cluster data is always text, never markup).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }

export function bytes(n) {
  if (n === undefined || n === null || Number.isNaN(n)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0; let v = Number(n);
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(v >= 100 || i === 0 ? 0 : 1)} ${units[i]}`;
}

export function num(n, digits = 1) {
  if (n === undefined || n === null) return "–";
  return Number.isInteger(n) ? String(n) : Number(n).toFixed(digits);
}

export function shortId(id) { return id ? String(id).slice(0, 8) : "–"; }

export function time(ms) {
  if (!ms) return "–";
  return new Date(ms).toLocaleTimeString();
}

export function duration(startMs, endMs) {
  if (!startMs) return "–";
  const d = ((endMs || Date.now()) - startMs) / 1000;
  return d < 1 ? `${Math.round(d * 1000)} ms` : d < 120 ? `${d.toFixed(1)} s` : `${(d / 60).toFixed(1)} min`;
}

const STATE_CLASS = {
  ALIVE: "ok", FINISHED: "ok", SUCCEEDED: "ok", RUNNING: "run", SUBMITTED_TO_WORKER: "run",
  PENDING: "warn", PENDING_CREATION: "warn", PENDING_ARGS_AVAIL: "warn", PENDING_NODE_ASSIGNMENT: "warn",
  RESTARTING: "warn", DEPENDENCIES_UNREADY: "warn", DRAINING: "warn",
  DEAD: "bad", FAILED: "bad", STOPPED: "bad",
};

export function stateBadge(state) {
  return h("span", { class: `state ${STATE_CLASS[state] || ""}` }, state || "–");
}

export function table(caption, columns, rows, { empty = "Nothing yet." } = {}) {
  // columns: [{title, num?, cell(row) -> Node|string}]
  const t = h("table", {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.title)))));
  const body = h("tbody");
  if (!rows.length) body.append(h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, empty)));
  for (const r of rows) body.append(h("tr", {}, columns.map((c) => h("td", { class: c.num ? "num" : null }, c.cell(r)))));
  t.append(body);
  return t;
}

// Run fn at most once per `ms` (trailing call kept), so bursts of events cost one render.
export function throttle(fn, ms) {
  let last = 0; let timer = null;
  const wrapped = (...args) => {
    const wait = last + ms - Date.now();
    if (wait <= 0) { last = Date.now(); fn(...args); return; }
    if (!timer) timer = setTimeout(() => { timer = null; last = Date.now(); fn(...args); }, wait);
  };
  wrapped.cancel = () => { if (timer) clearTimeout(timer); timer = null; };
  return wrapped;
}
