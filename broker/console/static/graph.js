// A task graph laid out by dependency, left to right (a layered, Sugiyama-style drawing):
//
// 1. layers: each task in the column after the latest of its prerequisites and of its parent
//    (the longest path to it; a parent edge that would close a cycle is left out of this);
// 2. an edge that spans several columns passes through a reserved point in each column between;
// 3. the order within each column is chosen to cross few edges (barycentre sweeps, the order
//    with the fewest crossings kept);
// 4. each task is moved toward its neighbours' height, keeping the order and a gap.
//
// Dependency edges are solid arrows from prerequisite to dependent (a soft one lighter), parent
// edges dashed arrows from parent to child, leaving and entering the boxes lower down.

import { go, h } from "./util.js";

const NW = 170, NH = 36, GX = 70, GAP = 14, PAD = 12, PARENT_DY = 10;

function layers(ids, edges) {
  const tryWith = (use) => {
    const incoming = new Map(ids.map((id) => [id, 0]));
    const out = new Map(ids.map((id) => [id, []]));
    for (const e of use) { incoming.set(e.to, incoming.get(e.to) + 1); out.get(e.from).push(e.to); }
    const layer = new Map(ids.map((id) => [id, 0]));
    const queue = ids.filter((id) => incoming.get(id) === 0);
    let done = 0;
    while (queue.length) {
      const u = queue.shift();
      done++;
      for (const v of out.get(u)) {
        layer.set(v, Math.max(layer.get(v), layer.get(u) + 1));
        incoming.set(v, incoming.get(v) - 1);
        if (incoming.get(v) === 0) queue.push(v);
      }
    }
    return done === ids.length ? layer : null;
  };
  return tryWith(edges) || tryWith(edges.filter((e) => e.kind === "dep")) || new Map(ids.map((id) => [id, 0]));
}

function crossings(links) {
  // links between two neighbouring columns, as pairs of positions: the pairs that cross
  let n = 0;
  for (let i = 0; i < links.length; i++) {
    for (let j = i + 1; j < links.length; j++) {
      const [a1, b1] = links[i], [a2, b2] = links[j];
      if ((a1 - a2) * (b1 - b2) < 0) n++;
    }
  }
  return n;
}

export function layout(tasks) {
  const byId = new Map(tasks.map((t) => [t.task_id, t]));
  const edges = [];
  for (const t of tasks) {
    for (const d of t.depends_on) if (byId.has(d.task_id)) edges.push({ from: d.task_id, to: t.task_id, kind: "dep", soft: d.type === "soft" });
    if (t.parent_id && byId.has(t.parent_id)) edges.push({ from: t.parent_id, to: t.task_id, kind: "parent" });
  }
  const ids = tasks.map((t) => t.task_id);
  const layer = layers(ids, edges);
  const depth = Math.max(0, ...layer.values()) + 1;

  // Points: the tasks, and one per column an edge passes through.
  const node = new Map(ids.map((id) => [id, { key: id, layer: layer.get(id), real: true }]));
  const cols = Array.from({ length: depth }, () => []);
  for (const id of ids) cols[layer.get(id)].push(id);
  const next = new Map([...node.keys()].map((k) => [k, []]));
  const prev = new Map([...node.keys()].map((k) => [k, []]));
  const link = (a, b) => { next.get(a).push(b); prev.get(b).push(a); };
  edges.forEach((e, i) => {
    e.points = [e.from];
    const lf = layer.get(e.from), lt = layer.get(e.to);
    if (lt <= lf) { e.points.push(e.to); return; } // drawn as is (a parent edge against the layers)
    let last = e.from;
    for (let l = lf + 1; l < lt; l++) {
      const key = `~${i}:${l}`;
      node.set(key, { key, layer: l, real: false });
      next.set(key, []); prev.set(key, []);
      cols[l].push(key);
      link(last, key);
      e.points.push(key);
      last = key;
    }
    link(last, e.to);
    e.points.push(e.to);
  });

  // Order within columns: barycentre sweeps, each followed by swaps of neighbours that cross
  // fewer edges (small graphs), keeping the order with the fewest crossings.
  const pos = new Map();
  const index = () => cols.forEach((col) => col.forEach((k, i) => pos.set(k, i)));
  const between = (c) => { // crossings between column c and c + 1
    if (c < 0 || c + 1 >= cols.length) return 0;
    const links = [];
    for (const k of cols[c]) for (const m of next.get(k)) if (node.get(m).layer === c + 1) links.push([pos.get(k), pos.get(m)]);
    return crossings(links);
  };
  const total = () => cols.reduce((n, _, c) => n + between(c), 0);
  const transpose = () => {
    for (let pass = 0, better = true; better && pass < 8; pass++) {
      better = false;
      cols.forEach((col, c) => {
        for (let i = 0; i + 1 < col.length; i++) {
          const before = between(c - 1) + between(c);
          [col[i], col[i + 1]] = [col[i + 1], col[i]];
          pos.set(col[i], i); pos.set(col[i + 1], i + 1);
          if (between(c - 1) + between(c) < before) { better = true; continue; }
          [col[i], col[i + 1]] = [col[i + 1], col[i]];
          pos.set(col[i], i); pos.set(col[i + 1], i + 1);
        }
      });
    }
  };
  const small = node.size <= 300;
  index();
  let best = cols.map((c) => [...c]), fewest = total();
  for (let sweep = 0; sweep < 16 && fewest > 0; sweep++) {
    const down = sweep % 2 === 0;
    const range = down ? [...cols.keys()].slice(1) : [...cols.keys()].reverse().slice(1);
    for (const c of range) {
      const near = down ? prev : next;
      const adjacent = down ? c - 1 : c + 1;
      const bary = new Map(cols[c].map((k) => {
        const ns = near.get(k).filter((m) => node.get(m).layer === adjacent);
        return [k, ns.length ? ns.reduce((s, m) => s + pos.get(m), 0) / ns.length : pos.get(k)];
      }));
      cols[c].sort((a, b) => bary.get(a) - bary.get(b) || pos.get(a) - pos.get(b));
      cols[c].forEach((k, i) => pos.set(k, i));
    }
    if (small) transpose();
    const n = total();
    if (n < fewest) { fewest = n; best = cols.map((col) => [...col]); }
  }
  best.forEach((col, c) => { cols[c] = col; });
  index();

  // Heights: stacked in order, then each moved toward its neighbours, keeping order and gaps.
  const height = (k) => (node.get(k).real ? NH : 0);
  const y = new Map();
  for (const col of cols) { let at = 0; for (const k of col) { y.set(k, at); at += height(k) + GAP; } }
  const centre = (k) => y.get(k) + height(k) / 2;
  const settle = (col, want) => {
    for (let i = 0; i < col.length; i++) {
      const floor = i ? y.get(col[i - 1]) + height(col[i - 1]) + GAP : -Infinity;
      y.set(col[i], Math.max(want.get(col[i]), floor));
    }
    for (let i = col.length - 2; i >= 0; i--) {
      const ceiling = y.get(col[i + 1]) - height(col[i]) - GAP;
      y.set(col[i], Math.min(y.get(col[i]), ceiling));
    }
    for (let i = 1; i < col.length; i++) {
      y.set(col[i], Math.max(y.get(col[i]), y.get(col[i - 1]) + height(col[i - 1]) + GAP));
    }
  };
  for (let round = 0; round < 6; round++) {
    const order = round % 2 === 0 ? [...cols.keys()] : [...cols.keys()].reverse();
    for (const c of order) {
      const want = new Map(cols[c].map((k) => {
        const ns = [...prev.get(k), ...next.get(k)];
        return [k, ns.length ? ns.reduce((s, m) => s + centre(m), 0) / ns.length - height(k) / 2 : y.get(k)];
      }));
      settle(cols[c], want);
    }
  }
  const top = Math.min(...y.values());
  for (const [k, v] of y) y.set(k, v - top + PAD);
  const place = new Map([...node.keys()].map((k) => [k, { x: PAD + node.get(k).layer * (NW + GX), y: y.get(k) }]));
  const bottom = Math.max(0, ...[...node.keys()].map((k) => y.get(k) + height(k)));
  return { edges, place, layer, width: PAD * 2 + depth * NW + (depth - 1) * GX, height: bottom + PAD, crossings: fewest };
}

function edgePath(e, place) {
  const dy = e.kind === "parent" ? PARENT_DY : 0;
  const at = (k, side) => {
    const p = place.get(k);
    const real = !k.startsWith("~");
    return { x: p.x + (side === "out" ? NW : 0), y: real ? p.y + NH / 2 + dy : p.y };
  };
  const pts = e.points;
  let a = at(pts[0], "out");
  let d = `M ${a.x} ${a.y}`;
  for (let i = 1; i < pts.length; i++) {
    const b = at(pts[i], "in");
    const mid = (b.x - a.x) / 2;
    d += ` C ${a.x + mid} ${a.y} ${b.x - mid} ${b.y} ${b.x} ${b.y}`;
    if (i < pts.length - 1) { a = at(pts[i], "out"); d += ` L ${a.x} ${a.y}`; }
  }
  return d;
}

function marker(id, cls, open) {
  return h("marker", { id, class: cls, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 8, markerHeight: 8, orient: "auto-start-reverse" },
    h("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: open ? "#fff" : "currentColor", stroke: "currentColor" }));
}

export function graphSvg(tasks, current) {
  const g = layout(tasks);
  const svg = h("svg", { class: "tree graph", width: g.width, height: g.height, viewBox: `0 0 ${g.width} ${g.height}`, "data-crossings": g.crossings },
    h("defs", {}, marker("arrow-dep", "dep", false), marker("arrow-parent", "parent", true)));
  for (const e of g.edges) {
    const cls = e.kind === "dep" ? `edge dep${e.soft ? " soft" : ""}` : "edge parent";
    svg.append(h("path", { class: cls, d: edgePath(e, g.place), "data-from": e.from, "data-to": e.to, "marker-end": `url(#arrow-${e.kind})` },
      h("title", {}, e.kind === "dep" ? `depends on${e.soft ? " (soft)" : ""}` : "parent of")));
  }
  for (const t of tasks) {
    const p = g.place.get(t.task_id);
    const label = t.title.length > 24 ? t.title.slice(0, 23) + "…" : t.title;
    svg.append(h("g", { class: `node${t.task_id === current ? " current" : ""}`, "data-task-id": t.task_id, "data-status": t.status, "data-layer": g.layer.get(t.task_id), onclick: () => go(`/tasks/${t.task_id}`) },
      h("title", {}, `${t.title} (${t.status})\n${t.task_id}`),
      h("rect", { x: p.x, y: p.y, width: NW, height: NH, style: `fill: var(--${t.status})` }),
      h("text", { x: p.x + 8, y: p.y + 15 }, label),
      h("text", { x: p.x + 8, y: p.y + 29, style: "opacity:.85" }, t.status)));
  }
  return svg;
}

export function graphLegend() {
  const sample = (cls, id) => h("svg", { width: 46, height: 12, class: "graph-sample" }, h("path", { class: `edge ${cls}`, d: "M 2 6 L 40 6", "marker-end": `url(#${id})` }));
  return h("span", { class: "graph-legend" },
    sample("dep", "arrow-dep"), " depends on (prerequisite → dependent)  ",
    sample("parent", "arrow-parent"), " parent → child");
}
