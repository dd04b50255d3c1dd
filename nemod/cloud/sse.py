"""Decoding the ``/run_sse`` stream: Google ADK events into typed :class:`AgentEvent`. Pure.

Each ``data:`` line holds one JSON Event with ``content.parts[]`` made of ``text``,
``functionCall`` or ``functionResponse`` parts (camelCase aliases; snake_case is
accepted too). ``heartbeat`` events and empty ``data:`` lines mean "keep waiting".
:func:`decode` turns one SSE event into zero or more :class:`AgentEvent`;
:class:`StreamResult` accumulates them into what the client acts on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["text", "function_call", "function_response", "heartbeat", "empty", "error", "other"]

#: Trailing text the reference says to ignore after normal answers.
_IGNORABLE = "i encountered a temporary issue"


@dataclass(frozen=True)
class AgentEvent:
    """One decoded item: ``kind``; ``text`` for text and error parts; ``name`` for function
    calls/responses; ``partial`` when ADK marked the event as a streamed fragment."""

    kind: Kind
    text: str = ""
    name: str = ""
    partial: bool = False
    invocation_id: str = ""


def decode(event_name: str, data: str) -> list[AgentEvent]:
    """Decode one SSE event (its ``event:`` name and ``data:`` payload).

    Never raises: undecodable payloads become an ``other`` event, so a strange line
    cannot break a stream that is otherwise fine.
    """
    if event_name == "heartbeat":
        return [AgentEvent("heartbeat")]
    if not data.strip():
        return [AgentEvent("empty")]
    try:
        payload = json.loads(data)
    except ValueError:
        return [AgentEvent("other", text=data[:200])]
    if not isinstance(payload, dict):
        return [AgentEvent("other")]
    if payload.get("type") == "heartbeat" or payload.get("heartbeat") is True:
        return [AgentEvent("heartbeat")]
    invocation = str(payload.get("invocationId") or payload.get("invocation_id") or "")
    error = payload.get("errorMessage") or payload.get("error_message") or payload.get("error")
    if error:
        return [AgentEvent("error", text=str(error), invocation_id=invocation)]
    partial = bool(payload.get("partial"))
    content = payload.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        return [AgentEvent("other", invocation_id=invocation)]
    events = [_part(part, partial, invocation) for part in parts if isinstance(part, dict)]
    return events or [AgentEvent("other", invocation_id=invocation)]


def _part(part: dict[str, Any], partial: bool, invocation: str) -> AgentEvent:
    if isinstance(part.get("text"), str):
        return AgentEvent("text", text=part["text"], partial=partial, invocation_id=invocation)
    call = part.get("functionCall") or part.get("function_call")
    if isinstance(call, dict):
        return AgentEvent("function_call", name=str(call.get("name", "")), invocation_id=invocation)
    answer = part.get("functionResponse") or part.get("function_response")
    if isinstance(answer, dict):
        return AgentEvent("function_response", name=str(answer.get("name", "")), invocation_id=invocation)
    return AgentEvent("other", invocation_id=invocation)


@dataclass
class StreamResult:
    """What one ``/run_sse`` call produced.

    ``ended`` says how the stream stopped: ``closed`` (the server ended it), ``dropped``
    (the connection broke or went silent), ``timeout`` (only heartbeats for too long,
    or the whole-stream limit).
    """

    texts: list[str] = field(default_factory=list)
    partial_texts: list[str] = field(default_factory=list)
    function_calls: list[str] = field(default_factory=list)
    function_responses: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    heartbeats: int = 0
    ended: Literal["closed", "dropped", "timeout"] = "closed"

    def add(self, event: AgentEvent) -> None:
        """Account for one decoded event."""
        if event.kind == "text" and event.text.strip():
            (self.partial_texts if event.partial else self.texts).append(event.text)
        elif event.kind == "function_call":
            self.function_calls.append(event.name)
        elif event.kind == "function_response":
            self.function_responses.append(event.name)
        elif event.kind == "error":
            self.errors.append(event.text)
        elif event.kind in ("heartbeat", "empty"):
            self.heartbeats += 1

    @property
    def answer(self) -> str:
        """The backend's text answer (final texts, else the joined fragments), with the
        ignorable trailing "temporary issue" note dropped; "" when there was no text."""
        texts = self.texts or (["".join(self.partial_texts)] if self.partial_texts else [])
        kept = [text.strip() for text in texts if text.strip()]
        if len(kept) > 1 and _IGNORABLE in kept[-1].lower():
            kept = kept[:-1]
        return "\n".join(kept)

    @property
    def has_text(self) -> bool:
        """True when the stream carried an answer in text."""
        return bool(self.answer)
