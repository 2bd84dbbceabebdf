// Tasks: counts by function and state, what each worker runs right now, a timeline of the last N tasks,
// and the task list (virtualized: 10,000 rows render as fast as 50).
import { getJSON, listState } from "../lib/api.js";
import { subscribe } from "../lib/events.js";
import { VirtualTable } from "../lib/vlist.js";
import { clear, duration, h, shortId, stateBadge, table, throttle, time } from "../lib/dom.js";

const PENDING = ["PENDING_ARGS_AVAIL", "PENDING_NODE_ASSIGNMENT", "SUBMITTED_TO_WORKER", "PENDING"];
const COLORS = ["#1f5fbf", "#1a7f37", "#b42318", "#8250df", "#bc4c00", "#0a7e8c", "#6e7781", "#bf3989", "#4d7a00", "#9a6700"];

// the summarize payload, wherever the event nests it (Ray's shape: ...node_id_to_summary.cluster.summary)
function summaryRows(payload) {
  // the SSE `tasks` event carries the {name: {func_or_class_name, type, state_counts}} map itself
  const direct = Object.values(payload || {});
  if (direct.length && direct.every((v) => v && v.func_or_class_name !== undefined)) {
    return direct.sort((a, b) => a.func_or_class_name.localeCompare(b.func_or_class_name));
  }
  let x = payload;
  for (let i = 0; i < 5 && x && !x.node_id_to_summary; i++) x = x.data || x.result || x.summary;
  const s = x && x.node_id_to_summary && x.node_id_to_summary.cluster ? x.node_id_to_summary.cluster.summary : {};
  return Object.values(s || {}).sort((a, b) => a.func_or_class_name.localeCompare(b.func_or_class_name));
}

function count(row, states) { return states.reduce((a, s) => a + ((row.state_counts || {})[s] || 0), 0); }

export function mount(main) {
  const summaryEl = h("div");
  const workersEl = h("div");
  const canvas = h("canvas", { class: "timeline", height: 220, role: "img", "aria-label": "Timeline of the last tasks" });
  const legend = h("div", { class: "legend", "aria-hidden": "true" });
  const timelineNote = h("p", { class: "sr-only", "aria-live": "off" });
  const limitSel = h("select", { id: "timeline-limit" }, [100, 300, 1000].map((n) => h("option", { value: n, selected: n === 300 }, String(n))));
  const stateSel = h("select", { id: "task-state" }, h("option", { value: "" }, "any"),
    ["RUNNING", "FINISHED", "FAILED", ...PENDING].map((s) => h("option", { value: s }, s)));
  const nameIn = h("input", { id: "task-name", type: "search", placeholder: "function name" });
  const listLimit = h("select", { id: "task-limit" }, [100, 1000, 10000].map((n) => h("option", { value: n, selected: n === 1000 }, String(n))));
  const listInfo = h("p", { role: "status" });
  const listEl = h("div");
  main.append(
    h("h1", {}, "Tasks"),
    h("h2", { id: "by-function" }, "By function and state"), summaryEl,
    h("h2", {}, "Workers: what each one runs now"), workersEl,
    h("h2", {}, "Timeline"),
    h("div", { class: "toolbar" }, h("label", { for: "timeline-limit" }, "Last tasks"), limitSel),
    canvas, legend, timelineNote,
    h("h2", {}, "Task list"),
    h("div", { class: "toolbar" },
      h("span", {}, h("label", { for: "task-state" }, "State"), stateSel),
      h("span", {}, h("label", { for: "task-name" }, "Function"), nameIn),
      h("span", {}, h("label", { for: "task-limit" }, "Show at most"), listLimit)),
    listInfo, listEl);

  const vt = new VirtualTable(listEl, [
    { title: "Task", cell: (t) => h("code", {}, shortId(t.task_id)) },
    { title: "Function", cell: (t) => t.func_or_class_name || t.name },
    { title: "State", cell: (t) => stateBadge(t.state) },
    { title: "Node", cell: (t) => h("code", {}, shortId(t.node_id)) },
    { title: "Worker pid", num: true, cell: (t) => t.worker_pid ?? "–" },
    { title: "Started", cell: (t) => time(t.start_time_ms) },
    { title: "Duration", num: true, cell: (t) => (t.start_time_ms ? duration(t.start_time_ms, t.end_time_ms) : "–") },
  ], { caption: "Recorded tasks" });

  function renderSummary(payload) {
    const rows = summaryRows(payload);
    clear(summaryEl).append(table("Task counts by function (all recorded tasks)", [
      { title: "Function", cell: (r) => h("code", {}, r.func_or_class_name) },
      { title: "Type", cell: (r) => r.type || "–" },
      { title: "Pending", num: true, cell: (r) => count(r, PENDING) },
      { title: "Running", num: true, cell: (r) => count(r, ["RUNNING"]) },
      { title: "Finished", num: true, cell: (r) => count(r, ["FINISHED"]) },
      { title: "Failed", num: true, cell: (r) => count(r, ["FAILED"]) },
    ], rows, { empty: "No tasks recorded yet." }));
  }

  function renderWorkers(ov) {
    const nodes = new Map((ov.nodes || []).map((n) => [n.node_id, n]));
    const rows = (ov.workers || []).filter((w) => w.is_alive !== false && w.worker_type !== "DRIVER")
      .sort((a, b) => (a.node_id || "").localeCompare(b.node_id || "") || a.pid - b.pid);
    clear(workersEl).append(table("Live workers and the function each one runs now", [
      { title: "Node", cell: (w) => `${(nodes.get(w.node_id) || {}).node_ip || ""} ${shortId(w.node_id)}` },
      { title: "Worker pid", num: true, cell: (w) => w.pid },
      { title: "Running now", cell: (w) => (w.current_task_name ? h("code", {}, w.current_task_name)
        : h("span", { class: "idle" }, w.actor_id ? "idle actor" : "idle")) },
      { title: "Actor", cell: (w) => (w.actor_id ? h("code", {}, shortId(w.actor_id)) : "–") },
    ], rows, { empty: "No workers started yet." }));
  }

  function drawTimeline(tasks) {
    const ctx = canvas.getContext("2d");
    const w = canvas.clientWidth || 800;
    const lanes = [...new Set(tasks.map((t) => `${shortId(t.node_id)} pid ${t.worker_pid}`))].sort();
    const laneH = Math.max(10, Math.min(24, Math.floor(600 / Math.max(1, lanes.length))));
    const left = 150; const top = 8;
    canvas.width = w * devicePixelRatio; canvas.height = (top * 2 + Math.max(1, lanes.length) * laneH + 18) * devicePixelRatio;
    canvas.style.height = `${canvas.height / devicePixelRatio}px`;
    ctx.scale(devicePixelRatio, devicePixelRatio);
    ctx.clearRect(0, 0, w, canvas.height);
    ctx.font = "12px system-ui, sans-serif";
    const names = [...new Set(tasks.map((t) => t.name))].sort();
    const color = new Map(names.map((n, i) => [n, COLORS[i % COLORS.length]]));
    clear(legend).append(...names.slice(0, 30).map((n) => h("span", {}, h("i", { style: `background:${color.get(n)}` }), n)));
    if (!tasks.length) { ctx.fillStyle = "#4d5560"; ctx.fillText("No task has started yet.", 10, 20); timelineNote.textContent = "No task has started yet."; return; }
    const now = Date.now();
    const t0 = Math.min(...tasks.map((t) => t.start_time_ms));
    const t1 = Math.max(...tasks.map((t) => t.end_time_ms || now));
    const scale = (w - left - 10) / Math.max(1, t1 - t0);
    lanes.forEach((lane, i) => { ctx.fillStyle = "#1b1f24"; ctx.fillText(lane, 4, top + i * laneH + laneH * 0.75); });
    for (const t of tasks) {
      const i = lanes.indexOf(`${shortId(t.node_id)} pid ${t.worker_pid}`);
      const x = left + (t.start_time_ms - t0) * scale;
      const bw = Math.max(1.5, ((t.end_time_ms || now) - t.start_time_ms) * scale);
      ctx.fillStyle = t.state === "FAILED" ? "#b42318" : color.get(t.name);
      ctx.fillRect(x, top + i * laneH + 2, bw, laneH - 4);
    }
    ctx.fillStyle = "#4d5560";
    const axisY = top + lanes.length * laneH + 14;
    ctx.fillText(new Date(t0).toLocaleTimeString(), left, axisY);
    const endLabel = `${new Date(t1).toLocaleTimeString()} (${((t1 - t0) / 1000).toFixed(1)} s)`;
    ctx.fillText(endLabel, w - ctx.measureText(endLabel).width - 6, axisY);
    timelineNote.textContent = `${tasks.length} tasks over ${((t1 - t0) / 1000).toFixed(1)} s on ${lanes.length} workers.`;
    canvas.setAttribute("aria-label", `Timeline: ${timelineNote.textContent}`);
  }

  const loadTimeline = throttle(async () => {
    try { drawTimeline((await getJSON(`/api/spindle/timeline?limit=${limitSel.value}`)).tasks || []); } catch (e) { timelineNote.textContent = e.message; }
  }, 2000);

  let listAbort = null;
  const loadList = throttle(async () => {
    if (listAbort) listAbort.abort();
    listAbort = new AbortController();
    const keys = []; const preds = []; const vals = [];
    if (stateSel.value) { keys.push("state"); preds.push("="); vals.push(stateSel.value); }
    if (nameIn.value.trim()) { keys.push("func_or_class_name"); preds.push("="); vals.push(nameIn.value.trim()); }
    try {
      const r = await listState("tasks", { limit: listLimit.value, detail: "true", filter_keys: keys, filter_predicates: preds, filter_values: vals });
      const rows = r.result || [];
      rows.sort((a, b) => (b.creation_time_ms || 0) - (a.creation_time_ms || 0));
      vt.setRows(rows);
      listInfo.textContent = `Showing ${rows.length} of ${r.total ?? rows.length} tasks${r.num_filtered !== undefined ? ` (${r.num_filtered} match)` : ""}.`;
    } catch (e) { if (e.name !== "AbortError") listInfo.textContent = `Could not list tasks: ${e.message}`; }
  }, 3000);

  for (const el of [stateSel, listLimit]) el.addEventListener("change", () => loadList());
  nameIn.addEventListener("change", () => loadList());
  limitSel.addEventListener("change", () => loadTimeline());

  const unsubs = [
    subscribe("tasks", (d) => { renderSummary(d.summary ?? d); loadTimeline(); loadList(); }),
    subscribe("overview", renderWorkers),
  ];
  getJSON("/api/v0/tasks/summarize").then(renderSummary).catch((e) => summaryEl.append(h("p", { class: "error" }, e.message)));
  getJSON("/api/spindle/overview").then(renderWorkers).catch(() => {});
  loadTimeline(); loadList();
  return () => { unsubs.forEach((u) => u()); loadTimeline.cancel(); loadList.cancel(); if (listAbort) listAbort.abort(); };
}
