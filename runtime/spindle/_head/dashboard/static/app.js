// The dashboard shell: hash routes (#/overview, #/tasks, ...), the login form, the live-connection status.
import { getJSON, login, logout, setUnauthorizedHandler } from "./lib/api.js";
import { connect, disconnect, onStatus } from "./lib/events.js";
import { clear } from "./lib/dom.js";

const PAGES = {
  overview: () => import("./pages/overview.js"),
  tasks: () => import("./pages/tasks.js"),
  actors: () => import("./pages/actors.js"),
  jobs: () => import("./pages/jobs.js"),
  logs: () => import("./pages/logs.js"),
  errors: () => import("./pages/errors.js"),
};

const main = document.getElementById("main");
const loginBox = document.getElementById("login");
const live = document.getElementById("live");
const signout = document.getElementById("signout");
let unmount = null;
let signedIn = false;
let routeSeq = 0;
let currentPage = null;

function pageName() {
  const name = (location.hash.match(/^#\/([a-z]+)/) || [])[1];
  return PAGES[name] ? name : "overview";
}

async function route() {
  if (!signedIn) return;
  const name = pageName();
  if (name === currentPage && unmount) return; // e.g. #/jobs/<id>: the page follows its own sub-route
  currentPage = name;
  const seq = ++routeSeq;
  for (const a of document.querySelectorAll("nav a[data-page]")) {
    if (a.dataset.page === name) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  if (unmount) { try { unmount(); } catch (e) { console.error(e); } unmount = null; }
  clear(main);
  const mod = await PAGES[name]();
  if (seq !== routeSeq) return; // the user moved on meanwhile
  document.title = `${name[0].toUpperCase()}${name.slice(1)} · Spindle dashboard`;
  unmount = mod.mount(main) || null;
}

function showLogin(message) {
  signedIn = false;
  currentPage = null;
  disconnect();
  if (unmount) { try { unmount(); } catch (_) { /* page gone */ } unmount = null; }
  clear(main);
  main.hidden = true;
  signout.hidden = true;
  loginBox.hidden = false;
  document.getElementById("login-error").textContent = message || "";
  document.getElementById("login-token").focus();
}

function start() {
  signedIn = true;
  loginBox.hidden = true;
  main.hidden = false;
  signout.hidden = false;
  connect();
  route();
}

setUnauthorizedHandler((message) => { if (signedIn) showLogin(message); });
onStatus((ok) => {
  live.textContent = ok ? "live" : "reconnecting…";
  live.className = `live ${ok ? "on" : "off"}`;
});

document.getElementById("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const input = document.getElementById("login-token");
  const err = document.getElementById("login-error");
  err.textContent = "";
  try {
    await login(input.value.trim());
    input.value = "";
    start();
  } catch (e) {
    err.textContent = e.message;
    input.setAttribute("aria-invalid", "true");
    input.select();
  }
});

signout.addEventListener("click", async () => { await logout(); showLogin("Signed out."); });
window.addEventListener("hashchange", route);

async function boot() {
  // a link printed by init() carries the token in the fragment (never sent over the network): sign in with
  // it once, then drop it from the address bar and the history
  const m = location.hash.match(/[#&]token=([^&]+)/);
  if (m) {
    history.replaceState(null, "", `${location.pathname}#/overview`);
    try { await login(decodeURIComponent(m[1])); } catch (e) { showLogin(e.message); return; }
  }
  try {
    await getJSON("/api/spindle/whoami");
    start();
  } catch (e) {
    showLogin(e.status === 401 ? "" : e.message);
  }
}

boot();
