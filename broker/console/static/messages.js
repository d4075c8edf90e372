// Messages: the list (newest first unless asked), dead letters requeued or purged, a message's
// page, and the form an admin sends a message with.

import {
  agentHref, api, badge, DURATION_FORMS, durationSeconds, facts, filterForm, flash, go, h, idCell, isAdmin,
  messageHref, ORDER, notify, pager, preview, shortForms, show, table, when,
} from "./util.js";

function sendForm() {
  const status = h("div");
  const field = (label, input) => h("label", {}, label, input);
  const agents = h("datalist", { id: "agent-ids" });
  api("/api/agents?page_size=500").then((d) => agents.replaceChildren(...d.agents.map((a) => h("option", { value: a.agent_id })))).catch(() => {});
  const target = h("select", { name: "target" }, [["agent", "an agent"], ["anycast", "any one agent with a capability"], ["broadcast", "every agent (with a capability)"]].map(([v, l]) => h("option", { value: v }, l)));
  const recipient = h("input", { name: "recipient_id", list: "agent-ids", placeholder: "agent id" });
  const capability = h("input", { name: "capability", placeholder: "capability", disabled: true });
  target.addEventListener("change", () => {
    recipient.disabled = target.value !== "agent";
    capability.disabled = target.value === "agent";
  });
  const form = h("form", { class: "send", "data-form": "send" },
    h("div", { class: "filters" },
      field("From (a registered agent)", h("input", { name: "sender_id", list: "agent-ids", placeholder: "sender id", required: true })),
      field("To", target), field("Recipient", recipient), field("Capability", capability),
      field("Type", h("input", { name: "message_type", placeholder: "message type" })),
      field("Content type", h("select", { name: "content_type" }, ["application/json", "text/plain"].map((c) => h("option", { value: c }, c)))),
      field("Conversation", h("input", { name: "conversation_id", placeholder: "optional" }))),
    field("Payload", h("textarea", { name: "payload", rows: 4, placeholder: '{"hello": "world"}' })),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Send")), status, agents);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = Object.fromEntries([...new FormData(form).entries()].filter(([, v]) => v !== ""));
    try {
      const r = await api("/api/messages/send", { body });
      status.replaceChildren(h("div", { class: "notice" }, `Sent ${r.message_ids.length} message(s): `,
        r.message_ids.map((id) => h("a", { href: messageHref(id), "data-sent": id }, id, " "))));
    } catch (err) { flash(status, err.message); }
  });
  return h("details", { class: "panel keep", "data-panel": "send" }, h("summary", {}, "Send a message"), form);
}

export async function renderMessages(params, render) {
  const status = h("div");
  const data = await api(`/api/messages?${params}`);
  const dead = params.get("status") === "failed";
  const picked = new Set();
  const requeue = h("button", { disabled: true, "data-action": "requeue", onclick: async () => {
    try {
      const r = await api("/api/messages/requeue", { body: { message_ids: [...picked] } });
      notify(`Requeued ${r.requeued} message(s).`);
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
      notify(`Purged ${r.purged} dead letter(s).`);
      render();
    } catch (e) { flash(status, e.message); }
  } }, "Purge dead letters");
  const ids = shortForms(data.messages.map((m) => m.message_id));
  const agents = shortForms(data.messages.flatMap((m) => [m.sender_id, m.recipient_id]));
  const conversations = shortForms(data.messages.map((m) => m.conversation_id));
  const rows = data.messages.map((m) => {
    const box = h("input", { type: "checkbox", "data-message-id": m.message_id, onchange: (e) => {
      if (e.target.checked) picked.add(m.message_id); else picked.delete(m.message_id);
      requeue.disabled = !isAdmin() || picked.size === 0;
    } });
    const topic = m.subject ? `${m.subject}${m.subscription ? ` (${m.subscription})` : ""}` : null;
    const to = m.recipient_id ? idCell(m.recipient_id, agents, agentHref(m.recipient_id)) : (topic || (m.target_capability ? `${m.target_kind}: ${m.target_capability}` : m.target_kind));
    return h("tr", { "data-message-id": m.message_id },
      h("td", {}, dead ? box : null),
      h("td", {}, idCell(m.message_id, ids, messageHref(m.message_id))),
      h("td", {}, idCell(m.sender_id, agents, agentHref(m.sender_id)), " → ", to),
      h("td", {}, m.message_type),
      h("td", {}, badge(m.status)),
      h("td", {}, `${m.attempt}/${m.max_attempts}`),
      h("td", {}, when(m.created_at)),
      h("td", {}, m.conversation_id ? idCell(m.conversation_id, conversations, `#/messages?conversation_id=${encodeURIComponent(m.conversation_id)}`) : ""),
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
      { name: "subscription", label: "Subscription" },
      { name: "subject", label: "Subject" },
      ORDER,
    ], params, (v) => go("/messages", v)),
    isAdmin() ? sendForm() : null,
    dead && isAdmin() ? h("div", { class: "actions" }, requeue, older, purge) : null,
    status,
    table(["", "Id", "From → to", "Type", "Status", "Attempt", "Created", "Conversation", "Reason", "Payload"], rows, "No messages match."),
    pager(data.next_page_token, params, "/messages"));
}

export async function renderMessage(messageId) {
  const { message: m } = await api(`/api/messages/${encodeURIComponent(messageId)}`);
  show(
    h("p", {}, h("a", { href: "#/messages" }, "← Messages")),
    h("h1", {}, "Message ", h("code", {}, m.message_id), " ", badge(m.status)),
    h("div", { class: "panel" }, facts([
      ["Id", idCell(m.message_id)], ["From", idCell(m.sender_id, null, agentHref(m.sender_id))],
      ["To", m.recipient_id ? idCell(m.recipient_id, null, agentHref(m.recipient_id)) : `${m.target_kind}: ${m.target_capability || m.subject || "every agent"}`],
      ["Subject", m.subject || ""], ["Subscription", m.subscription ? h("a", { href: `#/messages?subscription=${encodeURIComponent(m.subscription)}` }, m.subscription) : ""],
      ["Type", m.message_type], ["Content type", m.content_type], ["Priority", String(m.priority)],
      ["Attempt", `${m.attempt}/${m.max_attempts}`],
      ["Conversation", m.conversation_id ? h("a", { href: `#/messages?conversation_id=${encodeURIComponent(m.conversation_id)}` }, m.conversation_id) : ""],
      ["Correlation", m.correlation_id || ""],
      ["Created", when(m.created_at)], ["Delivered", when(m.delivered_at)], ["Processed", when(m.processed_at)],
      ["Last error", m.last_error || ""],
      ["Headers", Object.entries(m.headers).map(([k, v]) => h("div", {}, h("code", {}, `${k}: ${v}`)))],
      ["Payload", preview(m.payload)],
    ])));
}
