"""#22.10: the task graph on a task's page, in a real Chromium. A graph submitted without parents is
drawn whole from any of its tasks; a task sits in a column right of all its prerequisites; each
dependency is an arrow from prerequisite to dependent, a parent edge a different (dashed) arrow;
and 50 tasks are drawn with no box over another and no edge through a box."""

from __future__ import annotations

import random
from typing import Any

import pytest
from a2a_broker_client import BrokerClient
from a2a_broker_client.models import GraphNode, TaskSpec
from playwright.async_api import Page, expect

from .console_support import WAIT_MS, url

# Under pytest -n (make test) one Chromium at a time: the browser tests run on one worker.
pytestmark = pytest.mark.xdist_group("browser")

# Every drawn task: its box and column; every edge: its kind, ends, arrowhead and samples of its
# path (to check it passes through no other box).
GEOMETRY = """() => {
  const boxes = {};
  for (const g of document.querySelectorAll('svg.graph g.node')) {
    const r = g.querySelector('rect').getBBox();
    boxes[g.dataset.taskId] = {x: r.x, y: r.y, w: r.width, h: r.height, layer: Number(g.dataset.layer)};
  }
  const paths = [...document.querySelectorAll('svg.graph path.edge')].filter((p) => p.dataset.from);
  const edges = paths.map((p) => {
    const n = p.getTotalLength(), points = [];
    for (let i = 1; i < 40; i++) { const q = p.getPointAtLength((n * i) / 40); points.push([q.x, q.y]); }
    const style = getComputedStyle(p);
    return {kind: p.classList.contains('dep') ? 'dep' : 'parent', from: p.dataset.from, to: p.dataset.to,
            marker: p.getAttribute('marker-end'), dash: style.strokeDasharray, stroke: style.stroke, points};
  });
  const markers = [...document.querySelectorAll('svg.graph marker')].map((m) => m.id);
  return {boxes, edges, markers};
}"""


async def geometry(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate(GEOMETRY)
    return result


def inside(point: list[float], box: dict[str, float]) -> bool:
    x, y = point
    return box["x"] + 1 < x < box["x"] + box["w"] - 1 and box["y"] + 1 < y < box["y"] + box["h"] - 1


def check_readable(g: dict[str, Any], edges: set[tuple[str, str, str]]) -> None:
    """Every edge drawn once as an arrow of its kind, left to right; no box over another; no edge
    through a box other than its two ends."""
    boxes = g["boxes"]
    drawn = {(e["kind"], e["from"], e["to"]) for e in g["edges"]}
    assert drawn == edges
    for e in g["edges"]:
        assert e["marker"] == f"url(#arrow-{e['kind']})" and f"arrow-{e['kind']}" in g["markers"], e
        a, b = boxes[e["from"]], boxes[e["to"]]
        assert b["layer"] > a["layer"] and b["x"] >= a["x"] + a["w"], ("right to left", e["from"], e["to"])
        for other, box in boxes.items():
            if other not in (e["from"], e["to"]):
                through = [p for p in e["points"] if inside(p, box)]
                assert not through, f"the edge {e['from']} -> {e['to']} crosses the box of {other}"
    items = list(boxes.items())
    for i, (ka, a) in enumerate(items):
        for kb, b in items[i + 1 :]:
            apart = a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"] or a["y"] + a["h"] <= b["y"]
            assert apart or b["y"] + b["h"] <= a["y"], f"the boxes of {ka} and {kb} overlap"


async def test_a_graph_without_parents_is_drawn_whole_by_dependency_with_arrows(console, page, tmp_path):
    def spec(title: str) -> TaskSpec:
        return TaskSpec(title, required_capabilities=["docs"])

    async with BrokerClient(console.address, timeout=10) as client:
        graph = await client.submit_graph(
            [
                GraphNode("research", spec("research")),
                GraphNode("outline", spec("outline"), ["research"]),
                GraphNode("docs", spec("write docs"), ["research", "outline"]),
                GraphNode("examples", spec("write examples"), ["research"]),
                GraphNode("review", spec("review"), ["docs", "examples"]),
            ]
        )
    ids = graph.task_ids
    key = {v: k for k, v in ids.items()}
    await page.goto(url(console, f"#/tasks/{ids['docs']}"))
    await expect(page.locator("svg.graph g.node")).to_have_count(5, timeout=WAIT_MS)
    await page.screenshot(path=str(tmp_path / "graph.png"), full_page=True)
    g = await geometry(page)
    layers = {key[t]: b["layer"] for t, b in g["boxes"].items()}
    assert layers == {"research": 0, "outline": 1, "examples": 1, "docs": 2, "review": 3}
    deps = {("research", "outline"), ("research", "docs"), ("outline", "docs"), ("research", "examples")}
    deps |= {("docs", "review"), ("examples", "review")}
    check_readable(g, {("dep", ids[a], ids[b]) for a, b in deps})
    # "write docs depends on research": an arrow from research's box to write docs' box
    research, docs = g["boxes"][ids["research"]], g["boxes"][ids["docs"]]
    (edge,) = [e for e in g["edges"] if (e["from"], e["to"]) == (ids["research"], ids["docs"])]
    start, end = edge["points"][0], edge["points"][-1]
    assert start[0] >= research["x"] + research["w"] - 2 and end[0] <= docs["x"] + 2
    # the same graph from another of its tasks
    await page.goto(url(console, f"#/tasks/{ids['research']}"))
    await expect(page.locator("svg.graph g.node.current")).to_have_attribute("data-task-id", ids["research"])
    await expect(page.locator("svg.graph g.node")).to_have_count(5)


async def test_parent_and_dependency_edges_look_different(console, page):
    spec = TaskSpec
    async with BrokerClient(console.address, timeout=10) as client:
        graph = await client.submit_graph(
            [
                GraphNode("plan", spec("plan the report")),
                GraphNode("gather", spec("gather"), parent_key="plan"),
                GraphNode("draft", spec("draft"), ["gather"], parent_key="plan"),
                GraphNode("polish", spec("polish"), ["draft"], parent_key="draft"),
            ]
        )
    ids = graph.task_ids
    await page.goto(url(console, f"#/tasks/{ids['plan']}"))
    await expect(page.locator("svg.graph g.node")).to_have_count(4, timeout=WAIT_MS)
    g = await geometry(page)
    parents = {("plan", "gather"), ("plan", "draft"), ("draft", "polish")}
    deps = {("gather", "draft"), ("draft", "polish")}
    expected = {("parent", ids[a], ids[b]) for a, b in parents} | {("dep", ids[a], ids[b]) for a, b in deps}
    check_readable(g, expected)
    style = {e["kind"]: (e["dash"], e["marker"]) for e in g["edges"]}
    assert style["dep"][0] == "none" and style["parent"][0] != "none", style  # solid, dashed
    assert style["dep"][1] != style["parent"][1]  # and a different arrowhead
    # the two edges from draft to polish do not lie on each other
    (dep,) = [e for e in g["edges"] if e["kind"] == "dep" and e["to"] == ids["polish"]]
    (par,) = [e for e in g["edges"] if e["kind"] == "parent" and e["to"] == ids["polish"]]
    assert abs(dep["points"][20][1] - par["points"][20][1]) >= 6


async def test_a_50_task_graph_is_readable(console, page, tmp_path):
    """Ten waves of five tasks, each depending on one to three tasks of the two waves before."""
    rng = random.Random(22)
    nodes, deps = [], set()
    for i in range(50):
        wave = i // 5
        earlier = [j for j in range(max(0, (wave - 2) * 5), wave * 5)]
        pre = rng.sample(earlier, min(len(earlier), rng.randint(1, 3)))
        deps |= {(f"n{j}", f"n{i}") for j in pre}
        spec = TaskSpec(f"step {i}", required_capabilities=["x"])
        nodes.append(GraphNode(f"n{i}", spec, [f"n{j}" for j in pre]))
    async with BrokerClient(console.address, timeout=10) as client:
        graph = await client.submit_graph(nodes)
    ids = graph.task_ids
    await page.goto(url(console, f"#/tasks/{ids['n25']}"))
    await expect(page.locator("svg.graph g.node")).to_have_count(50, timeout=WAIT_MS)
    await page.screenshot(path=str(tmp_path / "graph-50.png"), full_page=True)
    g = await geometry(page)
    check_readable(g, {("dep", ids[a], ids[b]) for a, b in deps})
    crossings = int(await page.locator("svg.graph").get_attribute("data-crossings") or -1)
    assert 0 <= crossings < len(deps)  # fewer crossings than edges
