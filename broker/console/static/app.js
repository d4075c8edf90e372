// The a2a-broker console: one page, hash routes (#/agents, #/messages?status=failed,
// #/tasks/<id>, #/sessions/<id>) that can be shared, data from /api/ and live counts from
// /api/events (SSE). Plain JavaScript modules: nothing to build. Every value is set as text,
// never parsed as HTML.

import { renderAgent, renderAgents } from "./agents.js";
import { renderMessage, renderMessages } from "./messages.js";
import { renderSubscriptions } from "./subscriptions.js";
import { renderOverview } from "./overview.js";
import { renderSession, renderSessions, renderTask, renderTasks } from "./tasks.js";
import { api, flash, go, h, main, route, show, state, whenSignedOut } from "./util.js";

// ---------------------------------------------------------------- sign-in and live feed

function showLogin(reason) {
  state.refresh = null;
  state.role = null;
  document.getElementById("who").textContent = "";
  const err = h("div");
  const token = h("input", { type: "password", name: "token", placeholder: "a2a.… token", autocomplete: "off" });
  const form = h("form", { class: "panel login" },
    h("h1", {}, "Sign in"),
    h("p", { class: "muted" }, "The broker requires authentication. Paste an admin token, or a viewer token to look without changing anything."),
    token, h("button", { type: "submit" }, "Sign in"), err);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const resp = await fetch("/api/session", { method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token: token.value }) });
    const data = await resp.json().catch(() => ({}));
    if (!resp.ok) return flash(err, data.error || "refused");
    await start();
  });
  show(form);
  if (reason) flash(err, reason);
}
whenSignedOut(showLogin);

let source = null;
function connectLive() {
  if (source) source.close();
  source = new EventSource("/api/events");
  const live = document.getElementById("live");
  source.addEventListener("open", () => live.classList.add("on"));
  source.addEventListener("error", () => live.classList.remove("on"));
  source.addEventListener("overview", (ev) => {
    state.overview = JSON.parse(ev.data);
    const o = state.overview;
    const sig = JSON.stringify([o.agents, o.messages, o.tasks, o.totals]);
    const changed = sig !== state.signature;
    state.signature = sig;
    if (route().parts.length === 0) renderOverview(o);
    else if (changed && state.refresh && !busy()) state.refresh().catch(() => {});
  });
}

// Not while the operator is typing in a form, has picked rows or opened a form: a refresh would
// undo it.
function busy() {
  const el = document.activeElement;
  return (el && main.contains(el) && ["INPUT", "SELECT", "TEXTAREA"].includes(el.tagName))
    || main.querySelector("input[type=checkbox]:checked, details.keep[open]") !== null;
}

async function start() {
  const who = await fetch("/api/session", { credentials: "same-origin" }).then((r) => r.json());
  if (!who.role) return showLogin();
  state.session = who;
  state.role = who.role;
  const whoEl = document.getElementById("who");
  whoEl.replaceChildren(who.auth === "none" ? "no authentication" : `${who.subject} (${who.role}) `);
  if (who.auth !== "none") {
    whoEl.append(h("a", { href: "#", onclick: async (e) => { e.preventDefault(); await fetch("/api/session", { method: "DELETE" }); showLogin(); } }, "sign out"));
  }
  connectLive();
  render();
}

// ---------------------------------------------------------------- search by id

const PAGES = { task: "/tasks/", message: "/messages/", agent: "/agents/", session: "/sessions/" };
function setUpSearch() {
  const form = document.getElementById("search");
  const input = form.querySelector("input");
  const err = document.getElementById("search-error");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    err.textContent = "";
    const id = input.value.trim();
    if (!id || !state.role) return;
    try {
      const found = await api(`/api/search?id=${encodeURIComponent(id)}`);
      input.value = "";
      go(PAGES[found.kind] + encodeURIComponent(found.id));
    } catch (ex) {
      if (ex.message !== "sign in") err.textContent = ex.message;
    }
  });
}

// ---------------------------------------------------------------- A2A push notifications

async function renderPush(params) {
  const status = params.get("status") || "dead";
  const data = await api(`/api/push?status=${encodeURIComponent(status)}`);
  const rows = data.push.map((d) => h("tr", { "data-push": d.seq },
    h("td", {}, h("a", { href: `#/tasks/${encodeURIComponent(d.task_id)}` }, h("code", {}, d.task_id))),
    h("td", {}, h("code", {}, d.config_id)), h("td", {}, String(d.attempt)), h("td", {}, d.last_error || ""),
    h("td", {}, new Date(d.created_at).toLocaleString())));
  show(h("h1", {}, `A2A push notifications: ${status}`),
    h("p", { class: "muted" }, "Webhook POSTs of A2A task changes; a dead one was given up after its last attempt."),
    rows.length ? h("table", {}, h("tr", {}, ["Task", "Configuration", "Attempts", "Last error", "Queued"].map((x) => h("th", {}, x))), rows)
      : h("p", { class: "muted" }, "None."));
}

// ---------------------------------------------------------------- router

function page(parts, params) {
  const [kind, id] = [parts[0], parts[1] && decodeURIComponent(parts[1])];
  if (kind === "agents") return id ? () => renderAgent(id, render) : () => renderAgents(params, render);
  if (kind === "messages") return id ? () => renderMessage(id) : () => renderMessages(params, render);
  if (kind === "tasks") return id ? () => renderTask(id, render) : () => renderTasks(params);
  if (kind === "sessions") return id ? () => renderSession(id, params) : () => renderSessions(params);
  if (kind === "push") return () => renderPush(params);
  if (kind === "subscriptions") return () => renderSubscriptions(params);
  return null;
}

async function render() {
  const { parts, params } = route();
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", a.dataset.nav === (parts[0] || "overview"));
  state.refresh = null;
  try {
    if (parts.length === 0) { renderOverview(state.overview); return; }
    const draw = page(parts, params);
    if (!draw) { show(h("p", {}, "No such page.")); return; }
    await draw();
    state.refresh = draw;
  } catch (e) {
    if (e.message !== "sign in") show(h("div", { class: "error" }, e.message));
  }
}

window.addEventListener("hashchange", () => { if (state.role) render(); });
setUpSearch();
start();
