// The overview: counts, the rate chart (with its axes: rates per second against the time of day),
// the task latency panels (p50 and p99 from the broker's histograms) and the largest backlogs.

import { duration, h, show } from "./util.js";

function card(label, value, key) {
  return h("div", { class: "card" }, h("div", { class: "n", "data-count": key }, String(value ?? 0)), h("div", { class: "label" }, label));
}

// A round top for the y axis (1, 2 or 5 times a power of ten) and its step.
function scale(max) {
  const raw = Math.max(max, 0.1) / 4;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw);
  return { step, top: step * Math.ceil(Math.max(max, 0.1) / step) };
}
const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
const rate = (v) => (Number.isInteger(Math.round(v * 1000) / 1000) ? String(Math.round(v)) : String(+v.toFixed(2)));

const SERIES = [["published", "#4c6ef5"], ["delivered", "#f59f00"], ["acknowledged", "#2f9e44"], ["completed", "#ae3ec9"]];
function chart(rates) {
  const W = 640, H = 190, L = 46, R = 12, T = 12, B = 36;
  const svg = h("svg", { class: "chart", width: W, height: H, viewBox: `0 0 ${W} ${H}`, "data-points": rates.length });
  const { step, top } = scale(Math.max(0, ...rates.flatMap((r) => SERIES.map(([k]) => r[k] || 0))));
  const yOf = (v) => H - B - (v / top) * (H - B - T);
  const yAxis = h("g", { class: "axis y" });
  for (let v = 0; v <= top + step / 2; v += step) {
    yAxis.append(h("line", { x1: L, x2: W - R, y1: yOf(v), y2: yOf(v), class: v ? "grid" : "base" }),
      h("text", { x: L - 6, y: yOf(v) + 4, "text-anchor": "end" }, rate(v)));
  }
  yAxis.append(h("text", { x: 12, y: T + (H - B - T) / 2, "text-anchor": "middle", transform: `rotate(-90 12 ${T + (H - B - T) / 2})` }, "per second"));
  const xAxis = h("g", { class: "axis x" });
  svg.append(yAxis, xAxis);
  if (rates.length < 2) {
    svg.append(h("text", { x: L + 8, y: H / 2, class: "waiting" }, "collecting samples (one every 5 s)…"));
  } else {
    const t0 = rates[0].t, t1 = rates[rates.length - 1].t, span = Math.max(1, t1 - t0);
    const xOf = (t) => L + ((t - t0) / span) * (W - L - R);
    const ticks = 5;
    for (let i = 0; i < ticks; i++) {
      const t = t0 + (span * i) / (ticks - 1);
      xAxis.append(h("line", { x1: xOf(t), x2: xOf(t), y1: H - B, y2: H - B + 4, class: "tick" }),
        h("text", { x: xOf(t), y: H - B + 16, "text-anchor": i === 0 ? "start" : i === ticks - 1 ? "end" : "middle", "data-t": Math.round(t) }, clock(t)));
    }
    xAxis.append(h("text", { x: L + (W - L - R) / 2, y: H - 3, "text-anchor": "middle" }, `time (last ${duration(span)})`));
    for (const [k, color] of SERIES) {
      svg.append(h("polyline", { points: rates.map((r) => `${xOf(r.t)},${yOf(r[k] || 0)}`).join(" "), stroke: color, "data-series": k }));
    }
  }
  const legend = h("div", { class: "legend" }, SERIES.map(([k, c]) => h("span", {}, h("i", { style: `background:${c}` }), `${k}/s`)));
  return h("div", { class: "panel" }, svg, legend);
}

const PANELS = [
  ["queue_wait", "Queue wait", "from submission to the first assignment"],
  ["run_time", "Run time", "from an attempt's assignment to its end"],
];
function seconds(s, above) {
  return s === null || s === undefined ? "–" : `${above ? "> " : ""}${duration(s * 1000)}`;
}
function latencyPanel([key, title, what], data) {
  const row = (label, d, which) => h("tr", { "data-window": which },
    h("th", {}, label), h("td", { "data-p50": "" }, seconds(d.p50, d.p50_above)), h("td", { "data-p99": "" }, seconds(d.p99, d.p99_above)), h("td", { "data-n": "" }, String(d.n)));
  return h("div", { class: "panel latency", "data-latency": key },
    h("h3", {}, title, h("span", { class: "muted" }, ` ${what}`)),
    h("table", { class: "compact" }, h("tr", {}, h("th", {}, ""), h("th", {}, "p50"), h("th", {}, "p99"), h("th", {}, "tasks")),
      row(data.recent.window_s ? `last ${duration(data.recent.window_s * 1000)}` : "last minutes", data.recent, "recent"),
      row("since start", data.all, "all")));
}

// The keys with the most running or waiting tasks: [key, running, waiting], busiest first.
function keyRows(k) {
  if (!k) return [];
  const by = new Map();
  for (const [key, n] of k.running) by.set(key, [key, n, 0]);
  for (const [key, n] of k.waiting) (by.get(key) || by.set(key, [key, 0, 0]).get(key))[2] = n;
  return [...by.values()].sort((a, b) => b[1] + b[2] - a[1] - a[2] || (a[0] < b[0] ? -1 : 1));
}

export function renderOverview(o) {
  if (!o) { show(h("p", { class: "muted" }, "Waiting for the first counts…")); return; }
  const a = o.agents, m = o.messages, t = o.tasks;
  const backlogs = h("table", {}, h("tr", {}, h("th", {}, "Recipient"), h("th", {}, "Pending")),
    o.backlogs.agents.map(([id, n]) => h("tr", {}, h("td", {}, h("a", { href: `#/messages?recipient_id=${encodeURIComponent(id)}&status=pending` }, id)), h("td", {}, String(n)))),
    o.backlogs.capabilities.map(([cap, n]) => h("tr", {}, h("td", {}, `anycast: ${cap}`), h("td", {}, String(n)))));
  const keys = keyRows(o.keys);
  const keyTable = h("table", {}, h("tr", {}, h("th", {}, "Concurrency key"), h("th", {}, "Running"), h("th", {}, "Waiting")),
    keys.map(([k, r, w]) => h("tr", { "data-key": k }, h("td", {}, k), h("td", {}, String(r)), h("td", {}, String(w)))));
  const link = (href, child) => h("a", { href, style: "text-decoration:none;color:inherit" }, child);
  show(
    h("h1", {}, "Overview"),
    h("div", { class: "groups" },
      h("div", { class: "group" }, h("h2", {}, "Agents"), h("div", { class: "cards" },
        card("online", a.online, "agents.online"), card("available", a.available, "agents.available"), card("busy", a.busy, "agents.busy"),
        link("#/agents?status=offline", card("offline", a.offline, "agents.offline")))),
      h("div", { class: "group" }, h("h2", {}, "Messages"), h("div", { class: "cards" },
        card("ready", m.ready, "messages.ready"), card("unacked", m.unacked, "messages.unacked"), card("scheduled", m.scheduled, "messages.scheduled"),
        link("#/messages?status=failed", card("dead letters", m.dead, "messages.dead")))),
      h("div", { class: "group" }, h("h2", {}, "Tasks"), h("div", { class: "cards" },
        ["blocked", "ready", "running", "completed", "failed", "cancelled"].map((s) => link(`#/tasks?status=${s}`, card(s, t[s], `tasks.${s}`))))),
      o.push ? h("div", { class: "group" }, h("h2", {}, "A2A push notifications"), h("div", { class: "cards" },
        card("pending", o.push.pending, "push.pending"), link("#/push", card("dead", o.push.dead, "push.dead")))) : null),
    h("div", { class: "two" },
      h("div", {}, h("h2", {}, "Rates, last minutes"), chart(o.rates)),
      h("div", {},
        o.latency ? [h("h2", {}, "Task latency"), h("div", { class: "stack" }, PANELS.map((p) => latencyPanel(p, o.latency[p[0]])))] : null,
        h("h2", {}, "Largest backlogs"), o.backlogs.agents.length || o.backlogs.capabilities.length ? backlogs : h("p", { class: "muted" }, "No pending messages."),
        keys.length ? [h("h2", {}, "Concurrency keys"), keyTable] : null)),
    h("p", { class: "muted" }, `Updated ${new Date(o.at).toLocaleTimeString()}`));
}
