// Tasks and sessions: the lists (newest first unless asked), a task's page (facts, history, its
// attempts, the graph of the tasks it is connected to) and a session's page.

import { graphLegend, graphSvg } from "./graph.js";
import {
  agentHref, api, badge, duration, facts, filterForm, flash, go, h, idCell, isAdmin, ORDER, pager,
  preview, sessionHref, shortForms, show, table, taskHref, when,
} from "./util.js";

const STATUSES = ["blocked", "ready", "running", "completed", "failed", "cancelled"];

function taskTable(tasks, withSession = true) {
  const ids = shortForms(tasks.map((t) => t.task_id));
  const sessions = shortForms(tasks.map((t) => t.session_id));
  const agents = shortForms(tasks.map((t) => t.assigned_agent_id));
  const rows = tasks.map((t) => h("tr", { "data-task-id": t.task_id },
    h("td", {}, idCell(t.task_id, ids, taskHref(t.task_id))),
    h("td", {}, t.title),
    h("td", {}, badge(t.status)),
    h("td", {}, t.required_capabilities.join(", ")),
    h("td", {}, String(t.attempt)),
    h("td", {}, t.assigned_agent_id ? idCell(t.assigned_agent_id, agents, agentHref(t.assigned_agent_id)) : ""),
    withSession ? h("td", { "data-session": t.session_id || "" }, t.session_id ? idCell(t.session_id, sessions, sessionHref(t.session_id)) : "") : null,
    h("td", {}, when(t.created_at)),
    h("td", { class: "reason" }, t.last_error || "")));
  const headers = ["Id", "Title", "Status", "Capabilities", "Attempt", "Agent", withSession ? "Session" : null, "Created", "Last error"].filter(Boolean);
  return table(headers, rows, "No tasks match.");
}

export async function renderTasks(params) {
  const data = await api(`/api/tasks?${params}`);
  show(
    h("h1", {}, "Tasks"),
    filterForm([
      { name: "status", label: "Status", options: [["", "any"], ...STATUSES.map((s) => [s, s])] },
      { name: "capability", label: "Capability" },
      { name: "agent_id", label: "Agent" },
      { name: "tag", label: "Tag" },
      { name: "session_id", label: "Session" },
      ORDER,
    ], params, (v) => go("/tasks", v)),
    taskTable(data.tasks),
    pager(data.next_page_token, params, "/tasks"));
}

function attemptsTable(attempts) {
  const rows = attempts.map((a) => h("tr", { "data-attempt": a.attempt, "data-outcome": a.outcome },
    h("td", {}, String(a.attempt)),
    h("td", {}, a.agent_id ? h("a", { href: agentHref(a.agent_id) }, a.agent_id) : ""),
    h("td", {}, when(a.started_at)),
    h("td", {}, a.ended_at ? when(a.ended_at) : h("span", { class: "muted" }, "running")),
    h("td", { "data-duration": a.duration_ms ?? "" }, a.duration_ms !== null ? duration(a.duration_ms) : `${duration(Date.now() - a.started_at)} so far`),
    h("td", {}, badge(a.outcome), a.lease_expired ? h("span", { class: "badge failed", "data-lease-expired": "" }, "lease expired") : null),
    h("td", { class: "reason" }, a.reason),
    h("td", { "data-lease-expires": a.lease_expires_at ?? "" }, a.lease_expires_at ? when(a.lease_expires_at) : "")));
  return table(["Attempt", "Agent", "Started", "Ended", "Duration", "Outcome", "Error or reason", "Lease expires"], rows, "Not started yet.");
}

export async function renderTask(taskId, render) {
  const status = h("div");
  const { task: t, history, attempts } = await api(`/api/tasks/${encodeURIComponent(taskId)}`);
  const graph = await api(`/api/tasks/${encodeURIComponent(t.task_id)}/graph`);
  const panel = h("div", { class: "panel", style: "overflow:auto" }, graphSvg(graph.tasks, t.task_id));
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
      h("div", { class: "panel" }, facts([
        ["Id", idCell(t.task_id)], ["Type", t.task_type], ["Priority", String(t.priority)],
        ["Capabilities", t.required_capabilities.join(", ")], ["Attempt", `${t.attempt} (retries allowed: ${t.max_retries})`],
        ["Agent", t.assigned_agent_id ? h("a", { href: agentHref(t.assigned_agent_id) }, t.assigned_agent_id) : ""],
        ["Lease expires", t.lease_expires_at ? when(t.lease_expires_at) : ""],
        ["Progress", `${t.progress}% ${t.status_note || ""}`],
        ["Parent", t.parent_id ? h("a", { href: taskHref(t.parent_id) }, t.parent_id) : ""],
        ["Depends on", t.depends_on.map((d) => h("span", {}, h("a", { href: taskHref(d.task_id) }, d.task_id), ` (${d.type}) `))],
        ["Session", t.session_id ? h("a", { href: sessionHref(t.session_id) }, t.session_id) : ""], ["Tags", t.tags.join(", ")],
        ["Created", when(t.created_at)], ["Started", when(t.started_at)], ["Finished", when(t.finished_at)],
        ["Next attempt", t.next_attempt_at ? when(t.next_attempt_at) : ""],
        ["Last error", t.last_error || ""], ["Payload", preview(t.payload)], ["Result", preview(t.result)],
      ])),
      h("div", {}, h("h2", { style: "margin-top:0" }, "History"), h("ol", { class: "timeline" }, history.map((e) =>
        h("li", { style: `--dot: var(--${e.to_status})`, "data-to": e.to_status },
          h("div", {}, e.from_status ? `${e.from_status} → ` : "", h("strong", {}, e.to_status), h("span", { class: "muted" }, `  ${e.reason}${e.actor ? " by " + e.actor : ""}${e.attempt ? ", attempt " + e.attempt : ""}`)),
          h("div", { class: "muted" }, when(e.at))))))),
    h("h2", {}, "Attempts"),
    h("div", { "data-section": "attempts" }, attemptsTable(attempts)),
    h("h2", {}, "Graph", h("span", { class: "muted" }, ` ${graph.tasks.length} connected task(s)${graph.truncated ? ", the nearest 500 shown" : ""}`)),
    panel,
    h("p", { class: "legend" }, graphLegend(), "  ", Object.entries(graph.status_counts).map(([s, n]) => h("span", {}, badge(s), ` ${n}`))));
  const here = panel.querySelector("g.node.current rect"); // a wide graph: this task in view
  if (here) panel.scrollLeft = Math.max(0, here.x.baseVal.value - panel.clientWidth / 2);
}

export async function renderSessions(params) {
  const data = await api(`/api/sessions?${params}`);
  const ids = shortForms(data.sessions.map((s) => s.session_id));
  const rows = data.sessions.map((s) => h("tr", { "data-session-id": s.session_id },
    h("td", {}, idCell(s.session_id, ids, sessionHref(s.session_id))),
    h("td", {}, s.name),
    h("td", {}, badge(s.status)),
    h("td", {}, s.initiated_by),
    h("td", {}, Object.entries(s.counts).map(([k, n]) => h("span", { class: "count" }, badge(k), ` ${n} `))),
    h("td", {}, `${Math.round(s.progress * 100)}%`),
    h("td", {}, when(s.created_at))));
  show(
    h("h1", {}, "Sessions"),
    filterForm([
      { name: "status", label: "Status", options: [["", "any"], ...["active", "completed", "failed", "cancelled", "archived"].map((s) => [s, s])] },
      { name: "initiated_by", label: "Initiated by" },
      ORDER,
    ], params, (v) => go("/sessions", v)),
    table(["Id", "Name", "Status", "Initiated by", "Tasks", "Progress", "Created"], rows, "No sessions match."),
    pager(data.next_page_token, params, "/sessions"));
}

export async function renderSession(sessionId, params) {
  const d = await api(`/api/sessions/${encodeURIComponent(sessionId)}?${params}`);
  const s = d.session;
  show(
    h("p", {}, h("a", { href: "#/sessions" }, "← Sessions")),
    h("h1", {}, s.name || "Session", " ", badge(s.status)),
    h("div", { class: "panel" }, facts([
      ["Id", idCell(s.session_id)], ["Initiated by", s.initiated_by ? h("a", { href: agentHref(s.initiated_by) }, s.initiated_by) : ""],
      ["Parent session", s.parent_session_id ? h("a", { href: sessionHref(s.parent_session_id) }, s.parent_session_id) : ""],
      ["Tasks", h("span", { "data-counts": JSON.stringify(s.counts) }, Object.entries(s.counts).map(([k, n]) => h("span", {}, badge(k), ` ${n} `)))],
      ["Progress", h("span", { "data-progress": s.progress }, h("progress", { max: 1, value: s.progress }), ` ${Math.round(s.progress * 100)}% finished`)],
      ["Status reason", s.status_reason], ["Summary", s.summary],
      ["Budget", s.max_tasks ? `${s.max_tasks} tasks` : ""], ["Deadline", when(s.deadline)],
      ["Created", when(s.created_at)], ["Closed", when(s.closed_at)], ["Finished", when(s.finished_at)],
      ["Labels", Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).join(", ")],
    ])),
    h("h2", {}, "Its tasks"),
    filterForm([ORDER], params, (v) => go(`/sessions/${encodeURIComponent(s.session_id)}`, v)),
    taskTable(d.tasks, false),
    pager(d.next_page_token, params, `/sessions/${encodeURIComponent(s.session_id)}`));
}
