// Actors: state, class, node, pid, restarts; kill one (after a confirmation) through the head.
import { listState, postJSON } from "../lib/api.js";
import { confirmAction } from "../lib/confirm.js";
import { subscribe } from "../lib/events.js";
import { clear, h, shortId, stateBadge, table, throttle } from "../lib/dom.js";

export function mount(main) {
  const stateSel = h("select", { id: "actor-state" }, h("option", { value: "" }, "any"),
    ["ALIVE", "PENDING_CREATION", "RESTARTING", "DEAD"].map((s) => h("option", { value: s }, s)));
  const status = h("p", { role: "status" });
  const listEl = h("div");
  main.append(h("h1", {}, "Actors"),
    h("div", { class: "toolbar" }, h("label", { for: "actor-state" }, "State"), stateSel),
    status, listEl);
  let rows = [];

  async function kill(actor) {
    const who = `${actor.class_name}${actor.name ? ` "${actor.name}"` : ""} (${shortId(actor.actor_id)})`;
    const ok = await confirmAction("Kill this actor?",
      `Kill actor ${who} on node ${shortId(actor.node_id)}? Its process is stopped, pending calls fail, and it is not restarted.`,
      "Kill actor");
    if (!ok) { status.textContent = "Kill cancelled."; return; }
    try {
      await postJSON(`/api/spindle/actors/${encodeURIComponent(actor.actor_id)}/kill`, { no_restart: true });
      status.textContent = `Killed actor ${who}.`;
    } catch (e) {
      status.textContent = `Could not kill ${who}: ${e.message}`;
    }
    load();
  }

  function render() {
    const shown = stateSel.value ? rows.filter((a) => a.state === stateSel.value) : rows;
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.actor : null;
    clear(listEl).append(table(`${shown.length} actors`, [
      { title: "Actor", cell: (a) => h("code", { title: a.actor_id }, shortId(a.actor_id)) },
      { title: "Class", cell: (a) => a.class_name },
      { title: "Name", cell: (a) => a.name || "–" },
      { title: "State", cell: (a) => stateBadge(a.state) },
      { title: "Node", cell: (a) => h("code", {}, shortId(a.node_id)) },
      { title: "Pid", num: true, cell: (a) => a.pid || "–" },
      { title: "Restarts", num: true, cell: (a) => a.num_restarts ?? 0 },
      { title: "Death cause", cell: (a) => a.death_cause || "" },
      { title: "Action", cell: (a) => (a.state === "DEAD" ? "" : h("button", { type: "button", class: "danger", "data-actor": a.actor_id,
        "aria-label": `Kill actor ${a.class_name} ${shortId(a.actor_id)}`, onclick: () => kill(a) }, "Kill")) },
    ], shown, { empty: "No actors." }));
    if (focused) { const b = listEl.querySelector(`button[data-actor="${CSS.escape(focused)}"]`); if (b) b.focus(); }
  }

  const load = throttle(async () => {
    try {
      rows = (await listState("actors", { limit: 10000, detail: "true" })).result || [];
      rows.sort((a, b) => (a.state === "DEAD") - (b.state === "DEAD") || (a.class_name || "").localeCompare(b.class_name || ""));
      render();
    } catch (e) { status.textContent = `Could not list actors: ${e.message}`; }
  }, 1000);

  // reload when the cluster's actor counts change (the overview event carries them), not on every tick
  let lastKey = "";
  const unsub = subscribe("overview", (ov) => {
    const key = JSON.stringify((ov.cluster || {}).actors_by_state || {});
    if (key !== lastKey) { lastKey = key; load(); }
  });
  stateSel.addEventListener("change", render);
  load();
  return () => { unsub(); load.cancel(); };
}
