"""The A2A outcome values of a2a_turns: what they encode, and result()'s form kept as it was."""

from __future__ import annotations

import json

import pytest
from a2a_broker_client import a2a_turns as t


def doc(pair: tuple[bytes, str]) -> dict:
    body, ctype = pair
    assert ctype == t.RESULT_TYPE
    return json.loads(body)


def test_result_keeps_its_form_and_gives_each_reply_its_own_message_id():
    assert doc(t.result("done")) == {
        "state": "completed",
        "artifacts": [{"artifactId": "result", "name": "result", "parts": [{"text": "done"}]}],
    }
    a, b = (doc(t.result("which city?", state="input-required")) for _ in range(2))
    assert a["state"] == "input-required" and a["message"]["parts"] == [{"text": "which city?"}]
    assert a["message"]["role"] == "ROLE_AGENT"
    assert a["message"]["messageId"] != b["message"]["messageId"]
    assert "artifacts" not in a


def test_outcomes_encode_state_message_and_artifacts():
    art = t.artifact("Sunny", name="forecast", data={"c": 21})
    assert art["parts"] == [{"text": "Sunny"}, {"data": {"c": 21}}] and art["artifactId"]
    done = doc(t.completed("text", artifacts=[art], message="here").encode())
    assert [a["name"] for a in done["artifacts"]] == ["forecast", "result"]
    assert done["message"]["parts"] == [{"text": "here"}]
    asked = doc(t.input_required("Which city?").encode())
    assert asked["state"] == "input-required" and t.text_of(asked["message"]) == "Which city?"
    assert doc(t.auth_required("sign in").encode())["state"] == "auth-required"
    no = doc(t.rejected("not mine").encode())
    assert no["state"] == "rejected" and t.text_of(no["message"]) == "not mine" and "artifacts" not in no
    with pytest.raises(ValueError, match="state must be one of"):
        t.Outcome("done")
