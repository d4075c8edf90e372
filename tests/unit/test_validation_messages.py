"""INVALID_ARGUMENT messages name the field as the proto spells it (``nodes[1].task.title``,
``task.retry.max_retries``, ``wait``) and the rule in plain words (``must not be empty``), whatever
the validating model calls the field or however pydantic words the rule."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import pytest
from google.protobuf.descriptor import Descriptor
from pydantic import BaseModel, ValidationError

import broker.models
from broker.models.tasks import ClaimInput, SubmitGraphInput, SubmitInput
from broker.pb import agents_pb2, messaging_pb2, tasks_pb2
from broker.servicers.errors import PROTO_NAMES, validation_message

PROTOS = (agents_pb2, messaging_pb2, tasks_pb2)


def message_of(model: type[BaseModel], values: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as err:
        model(**values)
    return validation_message(err.value)


def resolves(request: Descriptor, path: str) -> bool:
    """Whether ``path`` (``nodes[1].task.title``) names a field of ``request``."""
    message: Descriptor | None = request
    for part in path.split("."):
        name = part.split("[")[0]
        if message is None or name not in message.fields_by_name:
            return False
        message = message.fields_by_name[name].message_type
    return True


CASES = [
    (SubmitInput, {"task": {"title": ""}}, tasks_pb2.SubmitRequest, "task.title: must not be empty"),
    (
        SubmitInput,
        {"task": {"title": "x" * 513}},
        tasks_pb2.SubmitRequest,
        "task.title: must be at most 512 characters",
    ),
    (
        SubmitInput,
        {"task": {"title": "t", "max_retries": 101}},
        tasks_pb2.SubmitRequest,
        "task.retry.max_retries: must be at most 100",
    ),
    (
        SubmitInput,
        {"task": {"title": "t", "lease_timeout_us": 1}},
        tasks_pb2.SubmitRequest,
        "task.lease_timeout: must be at least 1 s",
    ),
    (
        SubmitInput,
        {"task": {"title": "t", "parent_id": "bad id"}},
        tasks_pb2.SubmitRequest,
        "task.parent_id: must hold only letters, digits and . _ : @ -",
    ),
    (
        SubmitInput,
        {"task": {"title": "t", "tags": ["a"] * 33}},
        tasks_pb2.SubmitRequest,
        "task.tags: must hold at most 32 items (not 33)",
    ),
    (
        SubmitInput,
        {"task": {"title": "t", "depends_on": [{"task_id": ""}]}},
        tasks_pb2.SubmitRequest,
        "task.depends_on[0].task_id: must not be empty",
    ),
    (SubmitInput, {}, tasks_pb2.SubmitRequest, "task: is required"),
    (
        SubmitGraphInput,
        {"nodes": [{"key": "a", "task": {"title": "t"}}, {"key": "b", "task": {"title": ""}}]},
        tasks_pb2.SubmitGraphRequest,
        "nodes[1].task.title: must not be empty",
    ),
    (SubmitGraphInput, {"nodes": []}, tasks_pb2.SubmitGraphRequest, "nodes: must hold at least 1 item(s)"),
    (ClaimInput, {"agent_id": "a", "wait_s": 61}, tasks_pb2.ClaimRequest, "wait: must be at most 60 s"),
    (
        ClaimInput,
        {"agent_id": "a", "max_tasks": "many"},
        tasks_pb2.ClaimRequest,
        "max_tasks: must be a valid integer, unable to parse string as an integer",
    ),
]


@pytest.mark.parametrize(("model", "values", "request_type", "expected"), CASES, ids=[c[3] for c in CASES])
def test_the_message_names_the_proto_field_and_the_rule(model, values, request_type, expected) -> None:
    got = message_of(model, values)
    assert got == expected
    field = got.split(":")[0]
    assert resolves(request_type.DESCRIPTOR, field), f"{field} is not a field of {request_type.__name__}"


# Model fields no request carries, so no error can name them to a client, and why.
INTERNAL = {
    "party": "MessageFilter.party: set from the caller's identity (#22.17), never from a request",
    "newest_first": "the console's order box (HTTP); gRPC lists page in submission order",
}


def test_every_input_field_is_a_proto_field_or_renamed() -> None:
    """A model field the protos do not know (``lease_timeout_us``) must be in PROTO_NAMES, or its
    errors would name a field no client has."""
    proto_fields: set[str] = set()
    for module in PROTOS:
        stack = list(module.DESCRIPTOR.message_types_by_name.values())
        while stack:
            d = stack.pop()
            proto_fields |= set(d.fields_by_name)
            stack += d.nested_types
    unknown = []
    for info in pkgutil.iter_modules(broker.models.__path__):
        module = importlib.import_module(f"broker.models.{info.name}")
        for name, cls in vars(module).items():
            if isinstance(cls, type) and issubclass(cls, BaseModel) and cls.__module__ == module.__name__:
                unknown += [
                    f"{name}.{f}"
                    for f in cls.model_fields
                    if f not in proto_fields | set(PROTO_NAMES) | set(INTERNAL)
                ]
    assert unknown == []
