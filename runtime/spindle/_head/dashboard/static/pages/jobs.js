// Jobs: the job list with status, one job's logs streaming live (the Jobs API's WebSocket tail), and stop.
import { getJSON, postJSON } from "../lib/api.js";
import { confirmAction } from "../lib/confirm.js";
import { subscribe } from "../lib/events.js";
import { clear, h, stateBadge, table, throttle } from "../lib/dom.js";

const TERMINAL = new Set(["SUCCEEDED", "FAILED", "STOPPED"]);
const MAX_LOG_CHARS = 2_000_000; // keep the newest 2 MB of a job's log in the page

function when(s) { return s ? new Date(s).toLocaleString() : "–"; }

export function mount(main) {
  const status = h("p", { role: "status" });
  const listEl = h("div");
  const detail = h("section", { "aria-labelledby": "job-title" });
  main.append(h("h1", {}, "Jobs"), status, h("div", { class: "split" }, h("div", {}, listEl), detail));
  let jobs = [];
  let selected = null;
  let ws = null;

  function openLogs(job, pre, liveNote) {
    if (ws) ws.close();
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(`${proto}//${location.host}/api/jobs/${encodeURIComponent(job.submission_id)}/logs/tail`);
    pre.textContent = "";
    liveNote.textContent = "Streaming logs…";
    ws.onmessage = (ev) => {
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 20;
      let text = pre.textContent + ev.data;
      if (text.length > MAX_LOG_CHARS) text = text.slice(text.length - MAX_LOG_CHARS);
      pre.textContent = text;
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    };
    ws.onclose = () => { liveNote.textContent = "The log stream ended (the job finished or the connection closed)."; };
    ws.onerror = () => { liveNote.textContent = "Could not stream the logs."; };
  }

  async function stop(job) {
    const ok = await confirmAction("Stop this job?", `Stop job ${job.submission_id} (${job.entrypoint})? Its driver is sent SIGTERM, then SIGKILL.`, "Stop job");
    if (!ok) { status.textContent = "Stop cancelled."; return; }
    try {
      const r = await postJSON(`/api/jobs/${encodeURIComponent(job.submission_id)}/stop`);
      status.textContent = r.stopped ? `Stopping job ${job.submission_id}.` : `Job ${job.submission_id} had already ended.`;
    } catch (e) { status.textContent = `Could not stop ${job.submission_id}: ${e.message}`; }
    load();
  }

  function renderDetail() {
    const job = jobs.find((j) => j.submission_id === selected);
    if (!job) { clear(detail).append(h("h2", { id: "job-title" }, "Select a job"), h("p", { class: "empty" }, "Choose a job in the list to see its logs.")); return; }
    const existing = detail.querySelector("pre.log");
    const statusEl = detail.querySelector("[data-job-status]");
    if (existing && detail.dataset.job === job.submission_id) { // same job: update status only, keep the stream
      clear(statusEl).append(stateBadge(job.status), job.message ? ` ${job.message}` : "");
      const btn = detail.querySelector("button[data-stop]");
      if (btn) btn.disabled = TERMINAL.has(job.status);
      return;
    }
    detail.dataset.job = job.submission_id;
    const pre = h("pre", { class: "log", tabindex: "0", "aria-label": `Logs of job ${job.submission_id}`, "aria-live": "off" });
    const liveNote = h("p", { role: "status" });
    clear(detail).append(
      h("h2", { id: "job-title" }, `Job ${job.submission_id}`),
      h("p", { "data-job-status": "" }, stateBadge(job.status), job.message ? ` ${job.message}` : ""),
      h("p", {}, "Entrypoint: ", h("code", {}, job.entrypoint)),
      h("p", {}, `Started ${when(job.start_time)} · ended ${when(job.end_time)}`),
      h("div", { class: "toolbar" }, h("button", { type: "button", class: "danger", "data-stop": "", disabled: TERMINAL.has(job.status),
        onclick: () => stop(job) }, "Stop job")),
      h("h3", {}, "Logs"), liveNote, pre);
    openLogs(job, pre, liveNote);
  }

  function renderList() {
    clear(listEl).append(table(`${jobs.length} jobs, newest first`, [
      { title: "Job", cell: (j) => h("a", { href: `#/jobs/${encodeURIComponent(j.submission_id)}`, "aria-current": j.submission_id === selected ? "true" : null }, j.submission_id) },
      { title: "Status", cell: (j) => stateBadge(j.status) },
      { title: "Entrypoint", cell: (j) => h("code", {}, (j.entrypoint || "").slice(0, 80)) },
      { title: "Started", cell: (j) => when(j.start_time) },
    ], jobs, { empty: "No jobs submitted yet (spindle job submit, or JobSubmissionClient)." }));
    for (const tr of listEl.querySelectorAll("tbody tr")) {
      const a = tr.querySelector("a");
      if (a && decodeURIComponent(a.getAttribute("href").split("/").pop()) === selected) tr.classList.add("selected");
    }
  }

  function fromHash() {
    const m = location.hash.match(/^#\/jobs\/(.+)$/);
    selected = m ? decodeURIComponent(m[1]) : (selected || null);
  }

  const load = throttle(async () => {
    try {
      jobs = await getJSON("/api/jobs/");
      jobs.sort((a, b) => (b.start_time || 0) - (a.start_time || 0));
      fromHash();
      renderList();
      renderDetail();
    } catch (e) { status.textContent = `Could not list jobs: ${e.message}`; }
  }, 2000);

  const onHash = () => { fromHash(); renderList(); renderDetail(); };
  window.addEventListener("hashchange", onHash);
  const unsub = subscribe("overview", () => load(), { replay: false });
  load();
  return () => { unsub(); load.cancel(); window.removeEventListener("hashchange", onHash); if (ws) ws.close(); };
}
