// Agents: the list (deregister one, or every offline one) and an agent's page: what it holds now,
// its open streams, its record and its recent failures.

import {
  agentHref, ago, api, badge, duration, facts, filterForm, flash, go, h, idCell, isAdmin, messageHref,
  notify, pager, shortForms, show, table, taskHref, when,
} from "./util.js";

function deregisterButton(agentId, status, after) {
  return h("button", { class: "secondary", "data-action": "deregister", onclick: async () => {
    if (!confirm(`Deregister ${agentId}? Its unfinished work is released.`)) return;
    try { await api(`/api/agents/${encodeURIComponent(agentId)}/deregister`, { body: {} }); after(); } catch (e) { flash(status, e.message); }
  } }, "Deregister");
}

export async function renderAgents(params, render) {
  const status = h("div");
  const data = await api(`/api/agents?${params}`);
  const ids = shortForms(data.agents.map((a) => a.agent_id));
  const rows = data.agents.map((a) => h("tr", { "data-agent-id": a.agent_id },
    h("td", {}, idCell(a.agent_id, ids, agentHref(a.agent_id)), a.name && a.name !== a.agent_id ? h("div", { class: "muted" }, a.name) : null),
    h("td", {}, badge(a.status)),
    h("td", {}, a.capabilities.join(", ")),
    h("td", {}, `${a.current_task_count}/${a.max_concurrent_tasks}`),
    h("td", { title: when(a.last_heartbeat_at) }, ago(a.last_heartbeat_at)),
    h("td", {}, h("a", { href: `#/messages?recipient_id=${encodeURIComponent(a.agent_id)}&status=pending` }, String(a.backlog ?? ""))),
    h("td", {}, isAdmin() ? deregisterButton(a.agent_id, status, render) : null)));
  const offline = h("button", { class: "danger", "data-action": "deregister-offline", onclick: async () => {
    if (!confirm("Deregister every offline agent? Their records go; an agent that comes back registers again.")) return;
    try {
      const r = await api("/api/agents/deregister-offline", { body: {} });
      notify(`Deregistered ${r.deregistered.length} offline agent(s).`);
      setTimeout(render, 600);
    } catch (e) { flash(status, e.message); }
  } }, "Deregister offline agents");
  show(
    h("h1", {}, "Agents"),
    filterForm([
      { name: "status", label: "Status", options: [["", "any"], ["available", "available"], ["busy", "busy"], ["maintenance", "maintenance"], ["offline", "offline"]] },
      { name: "capability", label: "Capability" },
    ], params, (v) => go("/agents", v)),
    isAdmin() ? h("div", { class: "actions" }, offline, h("span", { class: "muted" }, "Agents offline longer than the retention (--agent-retention-s) are deregistered by the broker.")) : null,
    status,
    table(["Agent", "Status", "Capabilities", "Load", "Last heartbeat", "Backlog", ""], rows, "No agents match."),
    pager(data.next_page_token, params, "/agents"));
}

function taskRows(tasks, ids) {
  return tasks.map((t) => h("tr", { "data-task-id": t.task_id },
    h("td", {}, idCell(t.task_id, ids, taskHref(t.task_id))), h("td", {}, t.title), h("td", {}, badge(t.status)),
    h("td", {}, String(t.attempt)), h("td", {}, when(t.started_at)),
    h("td", {}, t.lease_expires_at ? when(t.lease_expires_at) : when(t.finished_at)),
    h("td", { class: "reason" }, t.last_error || "")));
}
function messageRows(messages, ids) {
  return messages.map((m) => h("tr", { "data-message-id": m.message_id },
    h("td", {}, idCell(m.message_id, ids, messageHref(m.message_id))), h("td", {}, m.sender_id), h("td", {}, m.message_type),
    h("td", {}, `${m.attempt}/${m.max_attempts}`), h("td", {}, when(m.delivered_at || m.created_at)), h("td", { class: "reason" }, m.last_error || "")));
}

export async function renderAgent(agentId, render) {
  const status = h("div");
  const d = await api(`/api/agents/${encodeURIComponent(agentId)}`);
  const a = d.agent, r = d.record;
  const finished = r.tasks_completed + r.tasks_failed;
  const tasks = shortForms([...d.held_tasks, ...d.failed_tasks].map((t) => t.task_id)); // unique on the page
  const messages = shortForms([...d.unacked_messages, ...d.dead_letters].map((m) => m.message_id));
  show(
    h("p", {}, h("a", { href: "#/agents" }, "← Agents")),
    h("h1", {}, a.name && a.name !== a.agent_id ? `${a.name} ` : "", h("code", {}, a.agent_id), " ", badge(a.status)),
    isAdmin() ? h("div", { class: "actions" }, deregisterButton(a.agent_id, status, () => go("/agents"))) : null,
    status,
    h("div", { class: "two" },
      h("div", { class: "panel" }, facts([
        ["Id", idCell(a.agent_id)], ["Type", a.agent_type], ["Capabilities", a.capabilities.join(", ")],
        ["Load", `${a.current_task_count}/${a.max_concurrent_tasks}${a.reported_free_capacity !== null ? ` (reports ${a.reported_free_capacity} free)` : ""}`],
        ["Open streams", h("span", { "data-open-streams": d.open_streams }, `${d.open_streams} (Subscribe and Listen, on this broker)`)],
        ["Pending messages", h("a", { href: `#/messages?recipient_id=${encodeURIComponent(a.agent_id)}&status=pending` }, String(a.backlog))],
        ["Last heartbeat", `${ago(a.last_heartbeat_at)} (${when(a.last_heartbeat_at)})`], ["Registered", when(a.registered_at)],
        a.endpoint ? ["Endpoint", a.endpoint] : null,
        ["Labels", Object.entries(a.labels).map(([k, v]) => `${k}=${v}`).join(", ")],
      ])),
      h("div", { class: "panel", "data-record": "" }, h("h2", { style: "margin-top:0" }, `Record, last ${duration(r.window_s * 1000)}`), facts([
        ["Completed", h("span", { "data-record-completed": r.tasks_completed }, String(r.tasks_completed))],
        ["Failed", h("span", { "data-record-failed": r.tasks_failed }, String(r.tasks_failed))],
        ["Success rate", h("span", { "data-success-rate": r.success_rate }, finished ? `${Math.round(r.success_rate * 100)}%` : "–")],
        ["Mean run time", finished ? duration(r.mean_run_ms) : "–"], ["p95 run time", finished ? duration(r.p95_run_ms) : "–"],
      ]))),
    h("h2", {}, "Tasks it holds", d.held_tasks_more ? " (first 100)" : ""),
    h("div", { "data-section": "held-tasks" }, table(["Task", "Title", "Status", "Attempt", "Started", "Lease expires", "Last error"], taskRows(d.held_tasks, tasks), "None.")),
    h("h2", {}, "Messages delivered to it, not yet acknowledged", d.unacked_messages_more ? " (first 100)" : ""),
    h("div", { "data-section": "unacked" }, table(["Message", "From", "Type", "Attempt", "Delivered", "Last error"], messageRows(d.unacked_messages, messages), "None.")),
    h("h2", {}, "Recent failures"),
    h("h3", {}, "Tasks it held that failed for good"),
    h("div", { "data-section": "failed-tasks" }, table(["Task", "Title", "Status", "Attempt", "Started", "Finished", "Error"], taskRows(d.failed_tasks, tasks), "No task it held failed for good.")),
    h("h3", {}, "Dead letters addressed to it"),
    h("div", { "data-section": "dead-letters" }, table(["Message", "From", "Type", "Attempt", "Delivered", "Reason"], messageRows(d.dead_letters, messages), "No dead letters addressed to it.")),
  );
}
