// One EventSource per page load for the whole dashboard: the head pushes `overview` (~1/s), `tasks` and
// `errors` events; pages subscribe to what they show. The browser reconnects by itself after a drop.

const listeners = new Map(); // event name -> Set(fn)
const last = new Map(); // event name -> last data (a page mounted later gets it at once)
let source = null;
let statusFn = () => {};

export function onStatus(fn) { statusFn = fn; }

export function connect() {
  if (source) return;
  source = new EventSource("/api/spindle/events", { withCredentials: true });
  source.onopen = () => statusFn(true);
  source.onerror = () => statusFn(false);
  for (const name of ["overview", "tasks", "errors"]) {
    source.addEventListener(name, (ev) => {
      let data;
      try { data = JSON.parse(ev.data); } catch (_) { return; }
      last.set(name, data);
      for (const fn of listeners.get(name) || []) {
        try { fn(data); } catch (e) { console.error(e); }
      }
    });
  }
}

export function disconnect() { if (source) source.close(); source = null; statusFn(false); }

// Subscribe; returns the unsubscribe function.
export function subscribe(name, fn, { replay = true } = {}) {
  if (!listeners.has(name)) listeners.set(name, new Set());
  listeners.get(name).add(fn);
  if (replay && last.has(name)) fn(last.get(name));
  return () => listeners.get(name).delete(fn);
}

export function latest(name) { return last.get(name); }
