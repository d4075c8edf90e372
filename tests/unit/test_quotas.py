"""The pending cap's rules (pure logic; the storage count is a stand-in here): fair shares
between senders, and counting from storage without waiting for it (#22.18, #22.19)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from broker.security.quotas import Quotas, fair_share_admits
from tests.conftest import make_settings


def test_under_the_cap_anyone_is_admitted_at_it_only_below_an_equal_share() -> None:
    assert fair_share_admits(total=9, mine=9, senders=1, cap=10)
    assert not fair_share_admits(total=10, mine=10, senders=1, cap=10)  # alone: the whole cap
    assert fair_share_admits(total=10, mine=0, senders=2, cap=10)  # a newcomer: up to half
    assert fair_share_admits(total=14, mine=4, senders=2, cap=10)
    assert not fair_share_admits(total=15, mine=5, senders=2, cap=10)
    assert not fair_share_admits(total=15, mine=10, senders=2, cap=10)  # the largest is refused


class Counts:
    """A stand-in for the storage count that answers when told to."""

    def __init__(self) -> None:
        self.asked: list[asyncio.Future[tuple[int, dict[str, int]]]] = []

    async def __call__(self, recipient: str, limit: int) -> tuple[int, dict[str, int]]:
        fut: asyncio.Future[tuple[int, dict[str, int]]] = asyncio.get_running_loop().create_future()
        self.asked.append(fut)
        return await fut


async def test_the_pending_check_never_waits_for_storage_and_counts_what_it_admitted(tmp_path: Path) -> None:
    counts = Counts()
    q = Quotas(make_settings(tmp_path, quota_pending_messages=4), counts)
    assert q.admit_pending("s", [("inbox", "flood")]) is None  # admitted at once; a count starts
    await asyncio.sleep(0)
    assert len(counts.asked) == 1
    assert q.admit_pending("s", [("inbox", "flood")] * 3) is None  # still counting: from memory
    assert q.admit_pending("s", [("inbox", "flood")]) == "inbox"  # 4 held: the cap
    # Storage had none of them yet (committed after the count read); all 4 are still in flight.
    counts.asked[0].set_result((0, {}))
    await asyncio.sleep(0)
    assert q.admit_pending("s", [("inbox", "flood")]) == "inbox"  # not forgotten
    assert q.admit_pending("s", [("inbox", "other")]) is None  # another sender: its share
    q.settle_pending([("inbox", "flood")] * 4 + [("inbox", "other")])
    await q.close()


async def test_a_batch_is_admitted_whole_or_not_at_all(tmp_path: Path) -> None:
    counts = Counts()
    q = Quotas(make_settings(tmp_path, quota_pending_messages=3), counts)
    assert q.admit_pending("s", [("a", "x"), ("b", "x"), ("a", "x"), ("a", "x"), ("a", "x")]) == "a"
    assert q.admit_pending("s", [("a", "x")] * 3) is None  # nothing of the refused batch counted
    await asyncio.sleep(0)
    for fut in counts.asked:
        fut.set_result((0, {}))
    await q.close()
