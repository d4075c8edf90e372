// The a2a-broker console: one page, hash routes (#/agents, #/messages?status=failed,
// #/tasks/<id>) that can be shared, data from /api/ and live counts from /api/events (SSE).
// Plain JavaScript: nothing to build. Every value is set as text, never parsed as HTML.

const main = document.getElementById("main");
const state = { session: null, overview: null, role: null, refresh: null, signature: "" };

// ---------------------------------------------------------------- helpers

function h(tag, attrs = {}, ...children) {
  const svg = ["svg", "g", "rect", "line", "text", "polyline", "title"].includes(tag);
  const el = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

async function api(path, options = {}) {
  const init = { credentials: "same-origin", ...options };
  if (options.body !== undefined) {
    init.method = options.method || "POST";
    init.headers = { "Content-Type": "application/json" };
    init.body = JSON.stringify(options.body);
  }
  const resp = await fetch(path, init);
  const data = await resp.json().catch(() => ({}));
  if (resp.status === 401) { showLogin(data.error); throw new Error(data.error || "sign in"); }
  if (!resp.ok) throw new Error(data.error || `${resp.status} ${resp.statusText}`);
  return data;
}

const isAdmin = () => state.role === "admin";
const badge = (s) => h("span", { class: `badge ${s}`, "data-status": s }, s);
const when = (ms) => (ms ? new Date(ms).toLocaleString() : "");
function ago(ms) {
  if (!ms) return "";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 60 ? `${s} s ago` : s < 3600 ? `${Math.round(s / 60)} min ago` : when(ms);
}
function preview(p) {
  if (!p || p.kind === "empty") return h("span", { class: "muted" }, "(empty)");
  return h("details", {}, h("summary", {}, `${p.kind}, ${p.size} bytes`), h("pre", { class: "preview" }, p.text));
}
function show(...nodes) {
  main.replaceChildren(...nodes.flat().filter((n) => n !== null && n !== undefined && n !== false));
}
// A duration in the forms every duration option of the command line takes: seconds, or a
// number and a unit (a2a_broker_client/cli/_common.py's duration()).
const DURATION_FORMS = "seconds, or a number and a unit: 90s, 15m, 2h, 7d, 2w";
const UNIT_S = { "": 1, s: 1, m: 60, h: 3600, d: 86400, w: 7 * 86400 };
function durationSeconds(text) {
  const m = /^(\d+(?:\.\d+)?)\s*([smhdw]?)$/.exec(text.trim().toLowerCase());
  if (!m) throw new Error(`not a duration: "${text.trim()}" (${DURATION_FORMS})`);
  return Number(m[1]) * UNIT_S[m[2]];
}
function flash(where, text, ok = false) {
  where.replaceChildren(h("div", { class: ok ? "notice" : "error" }, text));
}
function route() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query] = raw.split("?");
  return { parts: path.split("/").filter(Boolean), params: new URLSearchParams(query || "") };
}
function go(path, params) {
  const q = new URLSearchParams(Object.entries(params || {}).filter(([, v]) => v)).toString();
  location.hash = `#${path}${q ? "?" + q : ""}`;
}
function filterForm(fields, params, onSubmit) {
  const form = h("form", { class: "filters" });
  for (const f of fields) {
    const input = f.options
      ? h("select", { name: f.name }, f.options.map(([v, label]) => h("option", { value: v, selected: params.get(f.name) === v }, label)))
      : h("input", { name: f.name, value: params.get(f.name) || "", placeholder: f.placeholder || "" });
    form.append(h("label", {}, f.label, input));
  }
  form.append(h("button", { type: "submit" }, "Apply"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    onSubmit(Object.fromEntries(new FormData(form).entries()));
  });
  return form;
}
function pager(token, params, path) {
  if (!token) return null;
  return h("p", {}, h("a", { href: "#", onclick: (e) => { e.preventDefault(); go(path, { ...Object.fromEntries(params), page_token: token }); } }, "Next page →"));
}

// ---------------------------------------------------------------- sign-in and live feed

function showLogin(reason) {
  state.refresh = null;
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

// Not while the operator is typing in a form or has picked rows: a refresh would undo it.
function busy() {
  const el = document.activeElement;
  return (el && main.contains(el) && ["INPUT", "SELECT"].includes(el.tagName)) || main.querySelector("input[type=checkbox]:checked") !== null;
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

// ---------------------------------------------------------------- overview

function card(label, value, key) {
  return h("div", { class: "card" }, h("div", { class: "n", "data-count": key }, String(value ?? 0)), h("div", { class: "label" }, label));
}

const SERIES = [["published", "#4c6ef5"], ["delivered", "#f59f00"], ["acknowledged", "#2f9e44"], ["completed", "#ae3ec9"]];
function chart(rates) {
  const W = 640, H = 160, P = 24;
  const svg = h("svg", { class: "chart", width: W, height: H, viewBox: `0 0 ${W} ${H}`, "data-points": rates.length });
  const max = Math.max(1, ...rates.flatMap((r) => SERIES.map(([k]) => r[k] || 0)));
  svg.append(h("line", { x1: P, y1: H - P, x2: W, y2: H - P, stroke: "#dde1e8" }));
  svg.append(h("text", { x: 2, y: 12, style: "fill:#6b7385;font-size:11px" }, `${max.toFixed(1)}/s`));
  if (rates.length < 2) svg.append(h("text", { x: P + 8, y: H / 2, style: "fill:#6b7385;font-size:12px" }, "collecting samples (one every 5 s)…"));
  else {
    const t0 = rates[0].t, t1 = rates[rates.length - 1].t, span = Math.max(1, t1 - t0);
    for (const [k, color] of SERIES) {
      const pts = rates.map((r) => `${P + ((r.t - t0) / span) * (W - P - 4)},${H - P - ((r[k] || 0) / max) * (H - P - 16)}`).join(" ");
      svg.append(h("polyline", { points: pts, stroke: color }));
    }
  }
  const legend = h("div", { class: "legend" }, SERIES.map(([k, c]) => h("span", {}, h("i", { style: `background:${c}` }), `${k}/s`)));
  return h("div", { class: "panel" }, svg, legend);
}

function renderOverview(o) {
  if (!o) { show(h("p", { class: "muted" }, "Waiting for the first counts…")); return; }
  const a = o.agents, m = o.messages, t = o.tasks;
  const backlogs = h("table", {}, h("tr", {}, h("th", {}, "Recipient"), h("th", {}, "Pending")),
    o.backlogs.agents.map(([id, n]) => h("tr", {}, h("td", {}, h("a", { href: `#/messages?recipient_id=${encodeURIComponent(id)}&status=pending` }, id)), h("td", {}, String(n)))),
    o.backlogs.capabilities.map(([cap, n]) => h("tr", {}, h("td", {}, `anycast: ${cap}`), h("td", {}, String(n)))));
  show(
    h("h1", {}, "Overview"),
    h("div", { class: "group" }, h("h2", {}, "Agents"), h("div", { class: "cards" },
      card("online", a.online, "agents.online"), card("available", a.available, "agents.available"), card("busy", a.busy, "agents.busy"), card("offline", a.offline, "agents.offline"))),
    h("div", { class: "group" }, h("h2", {}, "Messages"), h("div", { class: "cards" },
      card("ready", m.ready, "messages.ready"), card("unacked", m.unacked, "messages.unacked"), card("scheduled", m.scheduled, "messages.scheduled"),
      h("a", { href: "#/messages?status=failed", style: "text-decoration:none;color:inherit" }, card("dead letters", m.dead, "messages.dead")))),
    o.push ? h("div", { class: "group" }, h("h2", {}, "A2A push notifications"), h("div", { class: "cards" },
      card("pending", o.push.pending, "push.pending"),
      h("a", { href: "#/push", style: "text-decoration:none;color:inherit" }, card("dead", o.push.dead, "push.dead")))) : null,
    h("div", { class: "group" }, h("h2", {}, "Tasks"), h("div", { class: "cards" },
      ["blocked", "ready", "running", "completed", "failed", "cancelled"].map((s) =>
        h("a", { href: `#/tasks?status=${s}`, style: "text-decoration:none;color:inherit" }, card(s, t[s], `tasks.${s}`))))),
    h("div", { class: "two" },
      h("div", {}, h("h2", {}, "Rates, last minutes"), chart(o.rates)),
      h("div", {}, h("h2", {}, "Largest backlogs"), o.backlogs.agents.length || o.backlogs.capabilities.length ? backlogs : h("p", { class: "muted" }, "No pending messages."))),
    h("p", { class: "muted" }, `Updated ${new Date(o.at).toLocaleTimeString()}`));
}

// ---------------------------------------------------------------- agents

async function renderAgents(params) {
  const status = h("div");
  const data = await api(`/api/agents?${params}`);
  const rows = data.agents.map((a) => h("tr", { "data-agent-id": a.agent_id },
    h("td", {}, h("code", {}, a.agent_id), a.name ? h("div", { class: "muted" }, a.name) : null),
    h("td", {}, badge(a.status)),
    h("td", {}, a.capabilities.join(", ")),
    h("td", {}, `${a.current_task_count}/${a.max_concurrent_tasks}`),
    h("td", { title: when(a.last_heartbeat_at) }, ago(a.last_heartbeat_at)),
    h("td", {}, h("a", { href: `#/messages?recipient_id=${encodeURIComponent(a.agent_id)}&status=pending` }, String(a.backlog ?? ""))),
    h("td", {}, isAdmin() && a.status !== "offline" ? h("button", { class: "secondary", onclick: async () => {
      if (!confirm(`Deregister ${a.agent_id}? Its unfinished work is released.`)) return;
      try { await api(`/api/agents/${encodeURIComponent(a.agent_id)}/deregister`, { body: {} }); render(); } catch (e) { flash(status, e.message); }
    } }, "Deregister") : null)));
  show(
    h("h1", {}, "Agents"),
    filterForm([
      { name: "status", label: "Status", options: [["", "any"], ["available", "available"], ["busy", "busy"], ["maintenance", "maintenance"], ["offline", "offline"]] },
      { name: "capability", label: "Capability" },
    ], params, (v) => go("/agents", v)),
    status,
    h("table", {}, h("tr", {}, ["Agent", "Status", "Capabilities", "Load", "Last heartbeat", "Backlog", ""].map((c) => h("th", {}, c))), rows),
    data.agents.length ? null : h("p", { class: "muted" }, "No agents match."),
    pager(data.next_page_token, params, "/agents"));
}

// ---------------------------------------------------------------- messages

async function renderMessages(params) {
  const status = h("div");
  const data = await api(`/api/messages?${params}`);
  const dead = params.get("status") === "failed";
  const picked = new Set();
  const requeue = h("button", { disabled: true, "data-action": "requeue", onclick: async () => {
    try {
      const r = await api("/api/messages/requeue", { body: { message_ids: [...picked] } });
      flash(status, `Requeued ${r.requeued} message(s).`, true);
      setTimeout(render, 600);
    } catch (e) { flash(status, e.message); }
  } }, "Requeue selected");
  const older = h("input", { name: "older_than", type: "text", placeholder: "older than (e.g. 7d)", title: DURATION_FORMS, style: "width:150px" });
  const purge = h("button", { class: "danger", "data-action": "purge", onclick: async () => {
    let olderThan = null;
    try { olderThan = older.value.trim() ? durationSeconds(older.value) : null; } catch (e) { return flash(status, e.message); }
    if (!confirm("Delete dead letters for good?")) return;
    try {
      const r = await api("/api/messages/purge", { body: { status: "failed", older_than_s: olderThan } });
      flash(status, `Purged ${r.purged} dead letter(s).`, true);
      render();
    } catch (e) { flash(status, e.message); }
  } }, "Purge dead letters");
  const rows = data.messages.map((m) => {
    const box = h("input", { type: "checkbox", "data-message-id": m.message_id, onchange: (e) => {
      if (e.target.checked) picked.add(m.message_id); else picked.delete(m.message_id);
      requeue.disabled = !isAdmin() || picked.size === 0;
    } });
    return h("tr", { "data-message-id": m.message_id },
      h("td", {}, dead ? box : null),
      h("td", {}, h("code", {}, m.message_id)),
      h("td", {}, m.sender_id, " → ", m.recipient_id || (m.target_capability ? `${m.target_kind}: ${m.target_capability}` : m.target_kind)),
      h("td", {}, m.message_type),
      h("td", {}, badge(m.status)),
      h("td", {}, `${m.attempt}/${m.max_attempts}`),
      h("td", {}, when(m.created_at)),
      h("td", {}, m.conversation_id ? h("a", { href: `#/messages?conversation_id=${encodeURIComponent(m.conversation_id)}` }, m.conversation_id) : ""),
      h("td", { class: "reason" }, m.last_error || ""),
      h("td", {}, preview(m.payload)));
  });
  show(
    h("h1", {}, dead ? "Dead letters" : "Messages"),
    filterForm([
      { name: "status", label: "Status", options: [["", "any"], ["pending", "pending"], ["delivered", "delivered (unacked)"], ["processed", "processed"], ["failed", "dead letters"], ["expired", "expired"]] },
      { name: "recipient_id", label: "Recipient" },
      { name: "sender_id", label: "Sender" },
      { name: "conversation_id", label: "Conversation" },
      { name: "correlation_id", label: "Correlation" },
    ], params, (v) => go("/messages", v)),
    dead && isAdmin() ? h("div", { class: "actions" }, requeue, older, purge) : null,
    status,
    h("table", {}, h("tr", {}, ["", "Id", "From → to", "Type", "Status", "Attempt", "Created", "Conversation", "Reason", "Payload"].map((c) => h("th", {}, c))), rows),
    data.messages.length ? null : h("p", { class: "muted" }, "No messages match."),
    pager(data.next_page_token, params, "/messages"));
}

// ---------------------------------------------------------------- tasks

async function renderTasks(params) {
  const data = await api(`/api/tasks?${params}`);
  const rows = data.tasks.map((t) => h("tr", { "data-task-id": t.task_id },
    h("td", {}, h("a", { href: `#/tasks/${t.task_id}` }, h("code", {}, t.task_id))),
    h("td", {}, t.title),
    h("td", {}, badge(t.status)),
    h("td", {}, t.required_capabilities.join(", ")),
    h("td", {}, String(t.attempt)),
    h("td", {}, t.assigned_agent_id || ""),
    h("td", {}, when(t.created_at)),
    h("td", { class: "reason" }, t.last_error || "")));
  show(
    h("h1", {}, "Tasks"),
    filterForm([
      { name: "status", label: "Status", options: [["", "any"], ...["blocked", "ready", "running", "completed", "failed", "cancelled"].map((s) => [s, s])] },
      { name: "capability", label: "Capability" },
      { name: "agent_id", label: "Agent" },
      { name: "tag", label: "Tag" },
      { name: "session_id", label: "Session" },
    ], params, (v) => go("/tasks", v)),
    h("table", {}, h("tr", {}, ["Id", "Title", "Status", "Capabilities", "Attempt", "Agent", "Created", "Last error"].map((c) => h("th", {}, c))), rows),
    data.tasks.length ? null : h("p", { class: "muted" }, "No tasks match."),
    pager(data.next_page_token, params, "/tasks"));
}

// A tidy tree: leaves side by side in path order, each parent centred over its children;
// dependencies drawn as dashed arrows between the boxes.
function treeGraph(tasks, current) {
  const ids = new Set(tasks.map((t) => t.task_id));
  const children = new Map();
  const roots = [];
  for (const t of tasks) {
    if (t.parent_id && ids.has(t.parent_id)) {
      if (!children.has(t.parent_id)) children.set(t.parent_id, []);
      children.get(t.parent_id).push(t);
    } else roots.push(t);
  }
  const NW = 150, NH = 34, GX = 24, GY = 46;
  const pos = new Map();
  let column = 0, depth = 0;
  const place = (t, row) => {
    depth = Math.max(depth, row);
    const kids = children.get(t.task_id) || [];
    let x;
    if (kids.length === 0) x = column++;
    else {
      const xs = kids.map((k) => place(k, row + 1));
      x = (xs[0] + xs[xs.length - 1]) / 2;
    }
    pos.set(t.task_id, { x: GX + x * (NW + GX), y: 12 + row * (NH + GY) });
    return x;
  };
  roots.forEach((r) => place(r, 0));
  const width = column * (NW + GX) + GX;
  const height = (depth + 1) * (NH + GY);
  const svg = h("svg", { class: "tree", width, height, viewBox: `0 0 ${width} ${height}` });
  for (const t of tasks) {
    const p = pos.get(t.task_id);
    const parent = t.parent_id && pos.get(t.parent_id);
    if (parent) svg.append(h("line", { class: "parent", x1: parent.x + NW / 2, y1: parent.y + NH, x2: p.x + NW / 2, y2: p.y }));
    for (const d of t.depends_on) {
      const q = pos.get(d.task_id);
      if (q) svg.append(h("line", { class: "dep", x1: q.x + NW, y1: q.y + NH / 2, x2: p.x, y2: p.y + NH / 2 }));
    }
  }
  for (const t of tasks) {
    const p = pos.get(t.task_id);
    const label = t.title.length > 20 ? t.title.slice(0, 19) + "…" : t.title;
    svg.append(h("g", { class: `node${t.task_id === current ? " current" : ""}`, "data-task-id": t.task_id, "data-status": t.status, onclick: () => go(`/tasks/${t.task_id}`) },
      h("title", {}, `${t.title} (${t.status})`),
      h("rect", { x: p.x, y: p.y, width: NW, height: NH, style: `fill: var(--${t.status})` }),
      h("text", { x: p.x + 8, y: p.y + 14 }, label),
      h("text", { x: p.x + 8, y: p.y + 27, style: "opacity:.85" }, t.status)));
  }
  return svg;
}

async function renderTask(taskId) {
  const status = h("div");
  const { task: t, history } = await api(`/api/tasks/${encodeURIComponent(taskId)}`);
  const treeData = await api(`/api/tasks/${encodeURIComponent(t.root_id)}/tree`);
  const finished = ["completed", "failed", "cancelled"].includes(t.status);
  const act = async (what, body) => {
    try {
      const r = await api(`/api/tasks/${encodeURIComponent(t.task_id)}/${what}`, { body });
      if (what === "retry") go(`/tasks/${r.task.task_id}`);
      else render();
    } catch (e) { flash(status, e.message); }
  };
  show(
    h("p", {}, h("a", { href: "#/tasks" }, "← Tasks")),
    h("h1", {}, t.title, " ", badge(t.status)),
    isAdmin() ? h("div", { class: "actions" },
      finished ? null : h("button", { class: "danger", "data-action": "cancel", onclick: () => confirm("Cancel this task and its unfinished descendants?") && act("cancel", { cascade: true }) }, "Cancel"),
      ["failed", "cancelled"].includes(t.status) ? h("button", { "data-action": "retry", onclick: () => act("retry", {}) }, "Retry as a new task") : null) : null,
    status,
    h("div", { class: "two" },
      h("div", { class: "panel" }, h("dl", { class: "facts" }, [
        ["Id", h("code", {}, t.task_id)], ["Type", t.task_type], ["Priority", String(t.priority)],
        ["Capabilities", t.required_capabilities.join(", ")], ["Attempt", `${t.attempt} (retries allowed: ${t.max_retries})`],
        ["Agent", t.assigned_agent_id || ""], ["Progress", `${t.progress}% ${t.status_note || ""}`],
        ["Parent", t.parent_id ? h("a", { href: `#/tasks/${t.parent_id}` }, t.parent_id) : ""],
        ["Depends on", t.depends_on.map((d) => h("span", {}, h("a", { href: `#/tasks/${d.task_id}` }, d.task_id), ` (${d.type}) `))],
        ["Session", t.session_id || ""], ["Tags", t.tags.join(", ")],
        ["Created", when(t.created_at)], ["Started", when(t.started_at)], ["Finished", when(t.finished_at)],
        ["Last error", t.last_error || ""], ["Payload", preview(t.payload)], ["Result", preview(t.result)],
      ].flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))),
      h("div", {}, h("h2", { style: "margin-top:0" }, "History"), h("ol", { class: "timeline" }, history.map((e) =>
        h("li", { style: `--dot: var(--${e.to_status})`, "data-to": e.to_status },
          h("div", {}, e.from_status ? `${e.from_status} → ` : "", h("strong", {}, e.to_status), h("span", { class: "muted" }, `  ${e.reason}${e.actor ? " by " + e.actor : ""}${e.attempt ? ", attempt " + e.attempt : ""}`)),
          h("div", { class: "muted" }, when(e.at))))))),
    h("h2", {}, `Tree of ${t.root_id === t.task_id ? "this task" : "its root"}`, treeData.truncated ? " (first 500 tasks)" : ""),
    h("div", { class: "panel", style: "overflow:auto" }, treeGraph(treeData.tasks, t.task_id)),
    h("p", { class: "legend" }, Object.entries(treeData.status_counts).map(([s, n]) => h("span", {}, badge(s), ` ${n}`))));
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

async function render() {
  const { parts, params } = route();
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", a.dataset.nav === (parts[0] || "overview"));
  state.refresh = null;
  try {
    if (parts.length === 0) { renderOverview(state.overview); return; }
    if (parts[0] === "agents") { await renderAgents(params); state.refresh = () => renderAgents(params); return; }
    if (parts[0] === "messages") { await renderMessages(params); state.refresh = () => renderMessages(params); return; }
    if (parts[0] === "tasks" && parts[1]) { await renderTask(decodeURIComponent(parts[1])); state.refresh = () => renderTask(decodeURIComponent(parts[1])); return; }
    if (parts[0] === "tasks") { await renderTasks(params); state.refresh = () => renderTasks(params); return; }
    if (parts[0] === "push") { await renderPush(params); state.refresh = () => renderPush(params); return; }
    show(h("p", {}, "No such page."));
  } catch (e) {
    if (e.message !== "sign in") show(h("div", { class: "error" }, e.message));
  }
}

window.addEventListener("hashchange", () => { if (state.role) render(); });
start();
