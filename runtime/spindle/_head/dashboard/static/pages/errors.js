// Errors: the most recent task and actor failures, newest first, each with its traceback.
import { getJSON } from "../lib/api.js";
import { subscribe } from "../lib/events.js";
import { clear, h, shortId, throttle } from "../lib/dom.js";

export function mount(main) {
  const status = h("p", { role: "status" });
  const list = h("div");
  main.append(h("h1", {}, "Errors"), status, list);

  const opened = new Set(); // failures the user expanded stay expanded when new ones arrive
  const key = (e) => `${e.task_id || e.actor_id}:${e.time}`;

  function render(errors) {
    status.textContent = errors.length ? `${errors.length} recent failures, newest first.` : "No failures recorded.";
    clear(list).append(...errors.map((e) => h("details", { class: "err", open: opened.has(key(e)),
      ontoggle: (ev) => { if (ev.target.open) opened.add(key(e)); else opened.delete(key(e)); } },
      h("summary", {}, h("strong", {}, e.error_type || "Error"), ` in `, h("code", {}, e.name || "?"),
        ` · ${new Date((e.time || 0) * 1000).toLocaleString()} · node ${shortId(e.node_id)}`,
        e.worker_pid ? ` · pid ${e.worker_pid}` : "", h("br"), h("span", {}, (e.message || "").split("\n")[0].slice(0, 300))),
      h("p", {}, e.task_id ? `Task ${e.task_id}` : "", e.actor_id ? ` · actor ${e.actor_id}` : ""),
      h("pre", { class: "tb mono", tabindex: "0", "aria-label": "Traceback" }, e.traceback || e.message || ""))));
  }

  const load = throttle(async () => {
    try { render((await getJSON("/api/spindle/errors?limit=200")).errors || []); } catch (e) { status.textContent = `Could not load errors: ${e.message}`; }
  }, 1000);
  const unsub = subscribe("errors", () => load(), { replay: false });
  load();
  return () => { unsub(); load.cancel(); };
}
