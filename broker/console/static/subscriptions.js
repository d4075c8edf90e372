// Subscriptions to subjects: each with its filter, backlog, deliveries out, dead letters and the
// age of its oldest unacknowledged message; a subscription's deliveries are on the Messages page.

import { api, h, pager, show, table, when } from "./util.js";

function age(ms) {
  if (ms === null || ms === undefined) return "";
  const s = ms / 1000;
  return s < 120 ? `${s.toFixed(1)} s` : s < 7200 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(1)} h`;
}

export async function renderSubscriptions(params) {
  const data = await api(`/api/subscriptions?${params}`);
  const rows = data.subscriptions.map((s) => {
    const deliveries = `#/messages?subscription=${encodeURIComponent(s.name)}`;
    return h("tr", { "data-subscription": s.name },
      h("td", {}, h("a", { href: deliveries }, s.name)),
      h("td", {}, h("code", {}, s.filter)),
      h("td", { "data-figure": "backlog" }, String(s.backlog)),
      h("td", {}, String(s.in_flight)),
      h("td", {}, s.dead_letters ? h("a", { href: `${deliveries}&status=failed` }, String(s.dead_letters)) : "0"),
      h("td", { "data-figure": "oldest" }, age(s.oldest_unacked_age_ms)),
      h("td", {}, s.ordering ? "by key" : ""),
      h("td", {}, s.dead_letter_subject || ""),
      h("td", {}, when(s.created_at)));
  });
  show(
    h("h1", {}, "Subscriptions"),
    table(["Name", "Filter", "Backlog", "In flight", "Dead letters", "Oldest unacked", "Ordering", "Dead-letter subject", "Created"],
      rows, "No subscriptions."),
    pager(data.next_page_token, params, "/subscriptions"));
}
