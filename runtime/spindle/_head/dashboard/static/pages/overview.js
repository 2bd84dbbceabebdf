// Overview: cluster resources used/total, object store, counts, and every node with live CPU/memory charts.
import { getJSON } from "../lib/api.js";
import { subscribe } from "../lib/events.js";
import { SampleChart } from "../lib/charts.js";
import { bytes, clear, h, num, shortId, stateBadge, table } from "../lib/dom.js";

function card(label, value, frac) {
  const pct = frac === undefined || frac === null || !Number.isFinite(frac) ? null : Math.min(100, Math.max(0, frac * 100));
  return h("div", { class: "card" },
    h("div", { class: "label" }, label),
    h("div", { class: "value" }, value),
    pct === null ? null : h("div", { class: "bar", role: "img", "aria-label": `${label}: ${pct.toFixed(0)}% used` },
      h("span", { style: `width:${pct.toFixed(1)}%` })));
}

// memory-like resources are byte counts; the rest (CPU, GPU, custom) are plain numbers
function fmt(name, v) { return /memory/i.test(name) ? bytes(v) : num(v); }

function sumCounts(obj) { return Object.values(obj || {}).reduce((a, b) => a + b, 0); }

export function mount(main) {
  const cards = h("div", { class: "cards", "aria-label": "Cluster totals", role: "group" });
  const resources = h("div");
  const nodesEl = h("div", { class: "nodes" });
  main.append(h("h1", {}, "Overview"), cards, h("h2", {}, "Resources"), resources,
    h("h2", { id: "nodes-title" }, "Nodes"), h("section", { "aria-labelledby": "nodes-title" }, nodesEl));
  const charts = new Map(); // node_id -> {el, cpu, mem, info}

  function render(data) {
    const c = data.cluster || {};
    const total = c.resources_total || {}; const used = c.resources_used || {};
    const nodes = data.nodes || [];
    const memUsed = nodes.reduce((a, n) => a + (n.state === "DEAD" ? 0 : n.mem_used_bytes || 0), 0);
    const memTotal = nodes.reduce((a, n) => a + (n.state === "DEAD" ? 0 : n.mem_total_bytes || 0), 0);
    const tasks = c.tasks_by_state || {}; const actors = c.actors_by_state || {};
    clear(cards).append(
      card("CPUs used", `${num(used.CPU || 0)} / ${num(total.CPU || 0)}`, total.CPU ? (used.CPU || 0) / total.CPU : null),
      card("Memory used", `${bytes(memUsed)} / ${bytes(memTotal)}`, memTotal ? memUsed / memTotal : null),
      card("Object store", `${bytes(c.object_store_used_bytes)} / ${bytes(c.object_store_total_bytes)}`,
        c.object_store_total_bytes ? c.object_store_used_bytes / c.object_store_total_bytes : null),
      card("Nodes alive", String(c.num_nodes_alive ?? nodes.filter((n) => n.state === "ALIVE").length)),
      card("Workers", String(c.num_workers ?? (data.workers || []).length)),
      card("Actors alive", `${actors.ALIVE || 0} of ${sumCounts(actors)}`),
      card("Tasks running", String(tasks.RUNNING || 0)),
      card("Tasks finished / failed", `${tasks.FINISHED || 0} / ${tasks.FAILED || 0}`),
    );
    const names = [...new Set([...Object.keys(total), ...Object.keys(used)])].sort();
    clear(resources).append(table("Resources of the live nodes", [
      { title: "Resource", cell: (r) => r },
      { title: "Used", num: true, cell: (r) => fmt(r, used[r] || 0) },
      { title: "Total", num: true, cell: (r) => fmt(r, total[r] || 0) },
    ], names));
    const seen = new Set();
    for (const n of nodes) {
      seen.add(n.node_id);
      let entry = charts.get(n.node_id);
      if (!entry) {
        const info = h("p");
        const cpuEl = h("div", { class: "chart", role: "img", "aria-label": `CPU use of node ${shortId(n.node_id)} over the last minutes` });
        const memEl = h("div", { class: "chart", role: "img", "aria-label": `Memory use of node ${shortId(n.node_id)} over the last minutes` });
        const el = h("article", { class: "node", "aria-label": `Node ${n.node_ip} ${shortId(n.node_id)}` },
          h("h3", {}, `${n.node_ip || "?"} · ${shortId(n.node_id)}`, n.is_head_node ? " (head)" : ""), info,
          h("div", { class: "charts" }, cpuEl, memEl));
        nodesEl.append(el);
        const cpu = new SampleChart(cpuEl, { title: "CPU %", yRange: [0, 100], format: (v) => `${Number(v).toFixed(0)}%`,
          series: [{ label: "CPU", stroke: "#1f5fbf", fill: "rgba(31,95,191,.12)", value: (s) => s.cpu_percent }] });
        const mem = new SampleChart(memEl, { title: "Memory used", yRange: [0, n.mem_total_bytes || null], format: bytes,
          series: [{ label: "Memory", stroke: "#1a7f37", fill: "rgba(26,127,55,.12)", value: (s) => s.mem_used_bytes }] });
        entry = { el, info, cpu, mem };
        charts.set(n.node_id, entry);
      }
      clear(entry.info).append(stateBadge(n.state), ` CPU ${num(n.cpu_percent ?? 0)}% · memory ${bytes(n.mem_used_bytes)} of ${bytes(n.mem_total_bytes)}`,
        n.object_store_total_bytes ? ` · object store ${bytes(n.object_store_used_bytes)} of ${bytes(n.object_store_total_bytes)}` : "");
      const samples = n.samples || [];
      entry.cpu.update(samples);
      entry.mem.update(samples);
    }
    for (const [id, entry] of charts) {
      if (!seen.has(id)) { entry.cpu.destroy(); entry.mem.destroy(); entry.el.remove(); charts.delete(id); }
    }
  }

  let gotEvent = false;
  const unsub = subscribe("overview", (d) => { gotEvent = true; render(d); });
  if (!gotEvent) getJSON("/api/spindle/overview").then((d) => { if (!gotEvent) render(d); }).catch((e) => {
    main.append(h("p", { class: "error", role: "alert" }, `Could not load the overview: ${e.message}`));
  });
  return () => { unsub(); for (const e of charts.values()) { e.cpu.destroy(); e.mem.destroy(); } };
}
