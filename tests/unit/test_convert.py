"""broker/servicers/convert.py: the one home of protobuf <-> microsecond/struct/enum conversions."""

from __future__ import annotations

import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from broker.errors import InvalidArgument
from broker.pb import messaging_pb2, tasks_pb2
from broker.servicers.convert import dur, dur_us, enum_value, set_us, ts, ts_fields, ts_us

TIMES_US = [0, 1, 999_999, 1_000_000, 1_700_000_000_123_456, -1, -1_500_000]


@pytest.mark.parametrize("us", TIMES_US)
def test_every_timestamp_form_round_trips_microseconds(us):
    built = ts(us)
    from_fields = timestamp_pb2.Timestamp(**ts_fields(us))
    in_place = timestamp_pb2.Timestamp()
    set_us(in_place, us)
    assert built == from_fields == in_place
    assert 0 <= built.nanos < 1_000_000_000  # normalised, as protobuf requires
    holder = messaging_pb2.Message(created_at=built)
    assert ts_us(holder, "created_at") == us


def test_unset_fields_read_as_none_and_none_stays_unset():
    assert ts(None) is None
    assert ts_us(messaging_pb2.Message(), "created_at") is None
    assert dur_us(messaging_pb2.NackRequest(), "delay") is None


def test_timestamp_outside_years_1_to_9999_names_the_field():
    msg = messaging_pb2.Message(created_at=timestamp_pb2.Timestamp(seconds=253_402_300_800))
    with pytest.raises(InvalidArgument) as err:
        ts_us(msg, "created_at", "messages[0].created_at")
    assert err.value.field == "messages[0].created_at"


@pytest.mark.parametrize("seconds", [0.0, 0.000001, 1.5, 30.0, 86_400.0])
def test_duration_round_trips_through_microseconds(seconds):
    msg = messaging_pb2.NackRequest(delay=dur(seconds))
    assert dur_us(msg, "delay") == round(seconds * 1_000_000)
    in_place = duration_pb2.Duration()
    set_us(in_place, round(seconds * 1_000_000))
    assert in_place == dur(seconds)


def test_enum_value_refuses_numbers_the_proto_does_not_define():
    assert enum_value(tasks_pb2.TaskStatus, tasks_pb2.TASK_STATUS_RUNNING, "status") == (
        tasks_pb2.TASK_STATUS_RUNNING
    )
    with pytest.raises(InvalidArgument) as err:
        enum_value(tasks_pb2.TaskStatus, 99, "status")
    assert err.value.field == "status" and "99" in str(err.value)
