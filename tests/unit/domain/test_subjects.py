"""Subjects and filters (pure): validation, matching, and the index agreeing with plain matching."""

from __future__ import annotations

import itertools
import random

import pytest

from broker.domain.subjects import (
    SubjectIndex,
    check_filter,
    check_subject,
    literal_prefix,
    matches,
    parse_delivery_id,
    split_ids,
)
from broker.errors import InvalidArgument


@pytest.mark.parametrize(
    ("flt", "subject", "expected"),
    [
        ("a.b.c", "a.b.c", True),
        ("a.b.c", "a.b", False),
        ("a.*.c", "a.x.c", True),
        ("a.*.c", "a.x.y.c", False),
        ("a.>", "a.b", True),
        ("a.>", "a.b.c.d", True),
        ("a.>", "a", False),
        ("*", "a", True),
        ("*", "a.b", False),
        (">", "a.b", True),
        ("*.b.>", "a.b.c", True),
        ("*.b.>", "a.b", False),
    ],
)
def test_matches(flt: str, subject: str, expected: bool) -> None:
    assert matches(flt, subject) is expected
    assert (SubjectIndex([(7, flt)]).match(subject) == [7]) is expected


def test_the_index_agrees_with_plain_matching() -> None:
    rnd = random.Random(26)
    tokens = ["a", "b", "c"]
    filters = ["".join(p) for p in itertools.product(tokens + ["*"], repeat=1)]
    for n in (1, 2, 3):
        filters += [".".join(p) for p in itertools.product(tokens + ["*"], repeat=n)]
        filters += [".".join(p) + ".>" for p in itertools.product(tokens + ["*"], repeat=n - 1) if p] + [">"]
    filters = sorted(set(filters))
    index = SubjectIndex(enumerate(filters))
    subjects = [".".join(p) for n in (1, 2, 3, 4) for p in itertools.product(tokens, repeat=n)]
    for subject in subjects:
        assert index.match(subject) == [i for i, f in enumerate(filters) if matches(f, subject)], subject
    removed = set(rnd.sample(range(len(filters)), len(filters) // 2))
    for i in removed:
        index.remove(i)
    index.remove(10_000)  # not there: nothing happens
    for subject in subjects:
        want = [i for i, f in enumerate(filters) if i not in removed and matches(f, subject)]
        assert index.match(subject) == want, subject
    for i in range(len(filters)):
        index.remove(i)
    assert len(index) == 0 and index._root.empty()  # pruned


def test_add_again_replaces_the_filter() -> None:
    index = SubjectIndex([(1, "a.>")])
    index.add(1, "b.*")
    assert index.match("a.x") == [] and index.match("b.x") == [1]


@pytest.mark.parametrize(
    "subject", ["", "a..b", ".a", "a.", "a.*", "a.>", "a b", "é", "x" * 257, ".".join("a" * 17)]
)
def test_bad_subjects(subject: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        check_subject(subject)
    assert err.value.field == "target.subject"


@pytest.mark.parametrize("flt", ["", "a..b", "a.>.b", "a.b*", ">.a", "a.**"])
def test_bad_filters(flt: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        check_filter(flt)
    assert err.value.field == "filter"


def test_good_subjects_and_filters() -> None:
    assert check_subject("orders.eu-1.created_at:x@y") == "orders.eu-1.created_at:x@y"
    assert check_filter("orders.*.>") == ("orders", "*", ">")
    assert literal_prefix("orders.eu.*") == ("orders.eu.", False)
    assert literal_prefix("orders.eu") == ("orders.eu", True)
    assert literal_prefix("*.created") == ("", False)


def test_delivery_ids() -> None:
    assert parse_delivery_id("abc:12") == ("abc", 12)
    for plain in ("abc", "abc.1", ":12", "abc:", "abc:x1"):
        assert parse_delivery_id(plain) is None
    assert split_ids(["m1", "m2:3"]) == (["m1"], [("m2:3", "m2", 3)])
