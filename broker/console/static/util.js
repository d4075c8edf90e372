// Helpers every page of the console uses: elements (every value set as text, never parsed as
// HTML), the JSON API, routes, filter forms and pagers, times and durations, and ids shown in a
// short form that is unique within the page, with a button that copies the whole id.

export const main = document.getElementById("main");
export const state = { session: null, overview: null, role: null, refresh: null, signature: "" };
export const isAdmin = () => state.role === "admin";

const SVG = new Set(["svg", "g", "rect", "line", "text", "polyline", "path", "title", "defs", "marker", "polygon"]);

export function h(tag, attrs = {}, ...children) {
  const el = SVG.has(tag) ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
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

let onUnauthorized = () => {};
export function whenSignedOut(handler) { onUnauthorized = handler; }

export async function api(path, options = {}) {
  const init = { credentials: "same-origin", ...options };
  if (options.body !== undefined) {
    init.method = options.method || "POST";
    init.headers = { "Content-Type": "application/json" };
    init.body = JSON.stringify(options.body);
  }
  const resp = await fetch(path, init);
  const data = await resp.json().catch(() => ({}));
  if (resp.status === 401) { onUnauthorized(data.error); throw new Error("sign in"); }
  if (!resp.ok) throw Object.assign(new Error(data.error || `${resp.status} ${resp.statusText}`), { status: resp.status });
  return data;
}

export const badge = (s) => h("span", { class: `badge ${s}`, "data-status": s }, s);
export const when = (ms) => (ms ? new Date(ms).toLocaleString() : "");
export function ago(ms) {
  if (!ms) return "";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 60 ? `${s} s ago` : s < 3600 ? `${Math.round(s / 60)} min ago` : when(ms);
}
// A duration in milliseconds, in the unit that reads best.
export function duration(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return ms < 10_000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms / 1000)} s`;
  const s = Math.round(ms / 1000);
  const [hours, minutes] = [Math.floor(s / 3600), Math.round((s % 3600) / 60)];
  return s < 3600 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${hours} h${minutes ? ` ${minutes} min` : ""}`;
}
// A duration in the forms every duration option of the command line takes: seconds, or a
// number and a unit (a2a_broker_client/cli/_common.py's duration()).
export const DURATION_FORMS = "seconds, or a number and a unit: 90s, 15m, 2h, 7d, 2w";
const UNIT_S = { "": 1, s: 1, m: 60, h: 3600, d: 86400, w: 7 * 86400 };
export function durationSeconds(text) {
  const m = /^(\d+(?:\.\d+)?)\s*([smhdw]?)$/.exec(text.trim().toLowerCase());
  if (!m) throw new Error(`not a duration: "${text.trim()}" (${DURATION_FORMS})`);
  return Number(m[1]) * UNIT_S[m[2]];
}
export function preview(p) {
  if (!p || p.kind === "empty") return h("span", { class: "muted" }, "(empty)");
  return h("details", {}, h("summary", {}, `${p.kind}, ${p.size} bytes`), h("pre", { class: "preview" }, p.text));
}
export function show(...nodes) {
  main.replaceChildren(...nodes.flat().filter((n) => n !== null && n !== undefined && n !== false));
}
export function flash(where, text, ok = false) {
  where.replaceChildren(h("div", { class: ok ? "notice" : "error" }, text));
}
// What an action did, outside the page (which a live update may draw again), for a few seconds.
let toastTimer = null;
export function notify(text) {
  const el = document.getElementById("toast");
  el.replaceChildren(h("div", { class: "notice" }, text));
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.replaceChildren(), 8000);
}
export function facts(rows) {
  return h("dl", { class: "facts" }, rows.filter(Boolean).flatMap(([k, v]) => [h("dt", {}, k), h("dd", { "data-fact": k }, v)]));
}
export function table(headers, rows, empty) {
  if (!rows.length && empty) return h("p", { class: "muted" }, empty);
  return h("table", {}, h("tr", {}, headers.map((c) => h("th", {}, c))), rows);
}

// ---------------------------------------------------------------- routes, forms, pages

export function route() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query] = raw.split("?");
  return { parts: path.split("/").filter(Boolean), params: new URLSearchParams(query || "") };
}
export function go(path, params) {
  const q = new URLSearchParams(Object.entries(params || {}).filter(([, v]) => v)).toString();
  location.hash = `#${path}${q ? "?" + q : ""}`;
}
export const ORDER = { name: "order", label: "Order", options: [["", "newest first"], ["oldest", "oldest first"]] };

export function filterForm(fields, params, onSubmit) {
  const form = h("form", { class: "filters" });
  for (const f of fields) {
    const input = f.options
      ? h("select", { name: f.name }, f.options.map(([v, label]) => h("option", { value: v, selected: (params.get(f.name) || "") === v }, label)))
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
export function pager(token, params, path) {
  if (!token) return null;
  return h("p", {}, h("a", { href: "#", "data-action": "next-page", onclick: (e) => { e.preventDefault(); go(path, { ...Object.fromEntries(params), page_token: token }); } }, "Next page →"));
}

// ---------------------------------------------------------------- ids

const WHOLE = 12; // ids this short are shown whole
const MIN_SHOWN = 6;

// The short form of each id of a page: what is left once the prefix and the suffix all of them
// share are cut, then the fewest trailing characters of that (at least MIN_SHOWN) that still tell
// every id of the page apart. "…" marks what was cut. A lone id is shown whole.
export function shortForms(ids) {
  const uniq = [...new Set(ids.filter(Boolean))];
  const out = new Map();
  if (uniq.length < 2) { uniq.forEach((s) => out.set(s, s)); return out; } // nothing to tell apart
  let pre = 0, suf = 0;
  const shortest = Math.min(...uniq.map((s) => s.length));
  const first = uniq[0];
  while (pre < shortest && uniq.every((s) => s[pre] === first[pre])) pre++;
  while (suf < shortest - pre && uniq.every((s) => s[s.length - 1 - suf] === first[first.length - 1 - suf])) suf++;
  const mids = uniq.map((s) => s.slice(pre, s.length - suf));
  const longest = Math.max(...mids.map((m) => m.length));
  let k = Math.min(MIN_SHOWN, longest);
  while (k < longest && new Set(mids.map((m) => m.slice(-k))).size < mids.length) k++;
  uniq.forEach((s, i) => {
    if (s.length <= WHOLE) { out.set(s, s); return; }
    let tail = mids[i].slice(-k);
    let start = pre + mids[i].length - tail.length;
    if (tail.length < MIN_SHOWN) { // too little to read: widen to the left
      start = Math.max(0, start - (MIN_SHOWN - tail.length));
      tail = s.slice(start, pre + mids[i].length);
    }
    const end = start + tail.length;
    out.set(s, `${start > 0 ? "…" : ""}${tail}${end < s.length ? "…" : ""}`);
  });
  return out;
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = h("textarea", { style: "position:fixed;opacity:0" });
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
}

// An id in its short form (the whole one in the tooltip), a link when given one, and a button
// that copies the whole id.
export function idCell(id, forms, href) {
  if (!id) return "";
  const text = h("code", {}, forms?.get(id) || id);
  const button = h("button", { type: "button", class: "copy", title: `Copy ${id}`, "data-copy": id, onclick: async (e) => {
    e.preventDefault();
    e.stopPropagation();
    await copyText(id);
    button.textContent = "copied";
    setTimeout(() => { button.textContent = "copy"; }, 1200);
  } }, "copy");
  return h("span", { class: "id", "data-id": id, title: id }, href ? h("a", { href }, text) : text, button);
}

export const taskHref = (id) => `#/tasks/${encodeURIComponent(id)}`;
export const agentHref = (id) => `#/agents/${encodeURIComponent(id)}`;
export const sessionHref = (id) => `#/sessions/${encodeURIComponent(id)}`;
export const messageHref = (id) => `#/messages/${encodeURIComponent(id)}`;
