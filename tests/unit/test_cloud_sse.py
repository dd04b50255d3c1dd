"""Decoding ADK events from /run_sse (pure)."""

from __future__ import annotations

import json

from nemod.cloud.sse import AgentEvent, StreamResult, decode


def adk(*parts: dict[str, object], partial: bool = False) -> str:
    return json.dumps({"content": {"parts": list(parts), "role": "model"}, "author": "nemo_agent",
                       "id": "1", "invocationId": "inv-1", "partial": partial, "timestamp": 1.0})


def test_text_function_call_and_response_parts() -> None:
    events = decode("", adk({"text": "Done"}, {"functionCall": {"name": "edit", "args": {}}},
                            {"functionResponse": {"name": "edit", "response": {}}}))
    assert [event.kind for event in events] == ["text", "function_call", "function_response"]
    assert events[0].text == "Done" and events[0].invocation_id == "inv-1"
    assert events[1].name == events[2].name == "edit"


def test_snake_case_parts_are_accepted() -> None:
    events = decode("", adk({"function_call": {"name": "a"}}, {"function_response": {"name": "b"}}))
    assert [(event.kind, event.name) for event in events] == [
        ("function_call", "a"), ("function_response", "b")]


def test_heartbeats_and_empty_data_mean_keep_waiting() -> None:
    assert decode("heartbeat", "") == [AgentEvent("heartbeat")]
    assert decode("", '{"type": "heartbeat"}') == [AgentEvent("heartbeat")]
    assert decode("", "") == [AgentEvent("empty")]
    assert decode("", "   ") == [AgentEvent("empty")]


def test_garbage_never_raises() -> None:
    assert decode("", "not json")[0].kind == "other"
    assert decode("", "[1, 2]")[0].kind == "other"
    assert decode("", '{"content": {"parts": "x"}}')[0].kind == "other"
    assert decode("", adk({"inlineData": {}}))[0].kind == "other"


def test_errors_are_reported() -> None:
    assert decode("", '{"errorMessage": "boom"}') == [AgentEvent("error", text="boom")]


def test_stream_result_prefers_final_text_and_drops_the_trailing_temporary_issue() -> None:
    result = StreamResult()
    for data in (adk({"text": "Do"}, partial=True), adk({"text": "ne"}, partial=True),
                 adk({"text": "Done, click Export."}),
                 adk({"text": "I encountered a temporary issue, please retry."})):
        for event in decode("", data):
            result.add(event)
    assert result.answer == "Done, click Export."
    assert result.has_text


def test_stream_result_joins_fragments_when_no_final_text() -> None:
    result = StreamResult()
    for data in (adk({"text": "Do"}, partial=True), adk({"text": "ne"}, partial=True)):
        for event in decode("", data):
            result.add(event)
    assert result.answer == "Done"


def test_no_text_is_no_answer() -> None:
    result = StreamResult()
    for event in decode("heartbeat", "") + decode("", adk({"functionCall": {"name": "x"}})):
        result.add(event)
    assert not result.has_text and result.heartbeats == 1 and result.function_calls == ["x"]
