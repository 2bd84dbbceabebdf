// Logs: pick a node and one of its log files (head, agent, each worker, job drivers), tail it, follow it
// live, and search it. Only the newest lines are kept in the page.
import { getJSON, getText, streamText } from "../lib/api.js";
import { clear, h, shortId } from "../lib/dom.js";

const MAX_LINES = 5000;

export function mount(main) {
  const nodeSel = h("select", { id: "log-node" });
  const fileSel = h("select", { id: "log-file" });
  const linesSel = h("select", { id: "log-lines" }, [100, 1000, 5000].map((n) => h("option", { value: n, selected: n === 1000 }, String(n))));
  const follow = h("input", { id: "log-follow", type: "checkbox" });
  const search = h("input", { id: "log-search", type: "search", placeholder: "text to find" });
  const status = h("p", { role: "status" });
  const pre = h("pre", { class: "log", tabindex: "0", "aria-label": "Log lines" });
  main.append(h("h1", {}, "Logs"),
    h("div", { class: "toolbar" },
      h("span", {}, h("label", { for: "log-node" }, "Node"), nodeSel),
      h("span", {}, h("label", { for: "log-file" }, "File"), fileSel),
      h("span", {}, h("label", { for: "log-lines" }, "Last lines"), linesSel),
      h("span", {}, follow, h("label", { for: "log-follow" }, " Follow")),
      h("span", {}, h("label", { for: "log-search" }, "Search"), search)),
    status, pre);
  let lines = [];
  let abort = null;

  function render() {
    const q = search.value;
    const shown = q ? lines.filter((l) => l.toLowerCase().includes(q.toLowerCase())) : lines;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 20;
    clear(pre);
    if (!q) pre.textContent = shown.join("\n");
    else {
      const re = new RegExp(q.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "gi");
      for (const l of shown) {
        let i = 0;
        for (const m of l.matchAll(re)) { pre.append(l.slice(i, m.index), h("mark", {}, m[0])); i = m.index + m[0].length; }
        pre.append(l.slice(i) + "\n");
      }
    }
    if (q) status.textContent = `${shown.length} of ${lines.length} lines match "${q}".`;
    if (atBottom || follow.checked) pre.scrollTop = pre.scrollHeight;
  }

  function addText(text) {
    const parts = text.split("\n");
    if (lines.length && !lines.endsWithNewline) lines[lines.length - 1] += parts.shift();
    lines.push(...parts);
    lines.endsWithNewline = text.endsWith("\n");
    if (lines.endsWithNewline) lines.pop();
    if (lines.length > MAX_LINES) lines = Object.assign(lines.slice(lines.length - MAX_LINES), { endsWithNewline: lines.endsWithNewline });
  }

  function query() {
    return new URLSearchParams({ node_id: nodeSel.value, filename: fileSel.value, lines: linesSel.value });
  }

  async function load() {
    if (abort) abort.abort();
    abort = new AbortController();
    lines = []; lines.endsWithNewline = true;
    if (!nodeSel.value || !fileSel.value) { pre.textContent = ""; return; }
    const signal = abort.signal;
    try {
      if (follow.checked) {
        status.textContent = `Following ${fileSel.value}…`;
        let pending = false;
        await streamText(`/api/v0/logs/stream?${query()}`, (chunk) => {
          addText(chunk);
          if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; render(); }); }
        }, { signal });
        status.textContent = `The stream of ${fileSel.value} ended.`;
      } else {
        addText(await getText(`/api/v0/logs/file?${query()}`, { signal }));
        status.textContent = `Last ${lines.length} lines of ${fileSel.value}.`;
        render();
      }
    } catch (e) { if (e.name !== "AbortError") status.textContent = `Could not read ${fileSel.value}: ${e.message}`; }
  }

  async function loadFiles() {
    clear(fileSel);
    try {
      const cats = (await getJSON(`/api/v0/logs?node_id=${encodeURIComponent(nodeSel.value)}`)).data.result;
      for (const [cat, files] of Object.entries(cats)) {
        if (!files.length) continue;
        fileSel.append(h("optgroup", { label: cat }, files.map((f) => h("option", { value: f }, f))));
      }
      if (!fileSel.options.length) status.textContent = "This node has no log files yet.";
    } catch (e) { status.textContent = `Could not list the logs of node ${shortId(nodeSel.value)}: ${e.message}`; }
    load();
  }

  nodeSel.addEventListener("change", loadFiles);
  for (const el of [fileSel, linesSel, follow]) el.addEventListener("change", load);
  search.addEventListener("input", render);
  getJSON("/api/spindle/overview").then((ov) => {
    for (const n of ov.nodes || []) {
      nodeSel.append(h("option", { value: n.node_id }, `${n.node_ip} · ${shortId(n.node_id)}${n.is_head_node ? " (head)" : ""}${n.state === "DEAD" ? " (dead)" : ""}`));
    }
    loadFiles();
  }).catch((e) => { status.textContent = `Could not list nodes: ${e.message}`; });
  return () => { if (abort) abort.abort(); };
}
