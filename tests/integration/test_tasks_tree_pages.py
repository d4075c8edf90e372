"""GetTree one page at a time: a subtree of 10,000 descendants read in pages, a depth limit,
pages cut short before 4 MiB, and bad paging arguments refused."""

from __future__ import annotations

import grpc

from broker.pb import tasks_pb2 as pb

from .tasks_helpers import refused, spec, submit

Code = grpc.StatusCode


async def pages(stubs, task_id: str, **kw) -> list[pb.GetTreeResponse]:
    out = [await stubs.tasks.GetTree(pb.GetTreeRequest(task_id=task_id, **kw))]
    while out[-1].next_page_token:
        out.append(
            await stubs.tasks.GetTree(
                pb.GetTreeRequest(task_id=task_id, page_token=out[-1].next_page_token, **kw)
            )
        )
    return out


async def test_a_tree_of_10000_descendants_is_read_in_pages(stubs):
    root = await submit(stubs, "root")
    # 100 children of the root, each with 99 children: 10,000 descendants, two levels.
    children = []
    for i in range(0, 100, 50):
        g = await stubs.tasks.SubmitGraph(
            pb.SubmitGraphRequest(
                nodes=[
                    pb.GraphNode(key=f"c{j}", task=spec(f"c{j}", parent_id=root.task_id))
                    for j in range(i, i + 50)
                ]
            )
        )
        children += [t.task_id for t in g.tasks]
    for k in range(0, 100, 10):
        nodes = [
            pb.GraphNode(key=f"g{c}-{j}", task=spec("g", parent_id=children[c]))
            for c in range(k, k + 10)
            for j in range(99)
        ]
        await stubs.tasks.SubmitGraph(pb.SubmitGraphRequest(nodes=nodes))

    got = await pages(stubs, root.task_id, page_size=1000)
    assert len(got) == 11  # 10,001 tasks, 1,000 a page
    ids = [t.task_id for p in got for t in p.tasks]
    assert len(ids) == len(set(ids)) == 10_001 and ids[0] == root.task_id
    paths = [t.path for p in got for t in p.tasks]
    assert paths == sorted(paths)
    for p in got:  # counts and progress are of the whole subtree, on every page
        assert dict(p.status_counts) == {"TASK_STATUS_READY": 10_001} and p.progress == 0.0

    shallow = await pages(stubs, root.task_id, page_size=1000, max_depth=1)
    assert [t.task_id for p in shallow for t in p.tasks] == [
        root.task_id,
        *sorted(children, key=lambda i: ids.index(i)),
    ]
    assert len(await pages(stubs, root.task_id)) == 101  # the default page: 100


async def test_a_page_of_large_tasks_stays_under_4_mib(stubs):
    root = await submit(stubs, "root")
    for _ in range(8):
        await submit(stubs, "big", parent_id=root.task_id, payload=b"x" * (1024 * 1024 - 4096))
    got = await pages(stubs, root.task_id)
    assert len(got) >= 3 and all(p.ByteSize() < 4 * 1024 * 1024 for p in got)
    assert sum(len(p.tasks) for p in got) == 9


async def test_bad_paging_arguments_are_refused(stubs):
    root = await submit(stubs, "root")
    for req, field in (
        (pb.GetTreeRequest(task_id=root.task_id, page_size=1001), "page_size"),
        (pb.GetTreeRequest(task_id=root.task_id, page_token="bm9wZQ"), "page_token"),
        (pb.GetTreeRequest(task_id=root.task_id, page_token="WzFd"), "page_token"),
        (pb.GetTreeRequest(task_id=root.task_id, max_depth=-1), "max_depth"),
    ):
        assert field in await refused(stubs.tasks.GetTree(req), Code.INVALID_ARGUMENT)
