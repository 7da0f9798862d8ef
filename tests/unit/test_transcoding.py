"""The events' JSON writer: the library's documents, byte for byte, for every kind of value."""

from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import (
    DatetimeAsISO,
    JSONTranscoder,
    Transcoder,
    TranscodingNotRegisteredError,
    UUIDAsHex,
)

from commands.policy import Rules
from commands.resource import TRANSCODINGS, Resource
from events.transcoding import MsgspecTranscoder

START = datetime(2030, 1, 7, 9, tzinfo=UTC)


def registered(transcoder: Transcoder) -> Transcoder:
    for transcoding in (UUIDAsHex(), DatetimeAsISO(), *TRANSCODINGS):
        transcoder.register(transcoding)
    return transcoder


LIBRARY = registered(JSONTranscoder())
FAST = registered(MsgspecTranscoder())


class Name(str):
    pass


class Level(IntEnum):
    HIGH = 3


def resource_with_bookings() -> Resource:
    resource = Resource.register(
        uuid4(),
        name="Room é",
        timezone="Europe/Paris",
        capacity=2,
        requires_approval=False,
        details='quotes " and \\ and \n and \x01 and \u2028',
        rules={"buffer_after_minutes": 10, "max_duration_minutes": 240},
        actor="ops",
        now=START - timedelta(days=1),
    )
    for n in range(5):
        start = START + timedelta(hours=n)
        resource.create_booking(
            uuid4(),
            client_id=uuid4(),
            start=start,
            end=start + timedelta(minutes=30),
            details=None,
            actor=None,
            now=START - timedelta(days=1),
        )
    resource.add_closure(
        uuid4(),
        start=START + timedelta(days=3),
        end=START + timedelta(days=4),
        reason="works",
        actor=None,
        now=START - timedelta(days=1),
    )
    return resource


def documents() -> list[Any]:
    resource = resource_with_bookings()
    events = [dict(vars(event)) for event in resource.collect_events()]
    snapshot = dict(vars(Resource.Snapshot.take(resource)))
    nested = {
        "list": [1, 2.5, None, True, "x", [UUID(int=7), {"at": START}]],
        "tuple": (UUID(int=8), START),
        "rules": Rules(buffer_before_minutes=5),
        "name": Name("a str subclass"),
        "level": Level.HIGH,
        "empty": {},
    }
    return [*events, snapshot, nested, "plain", 3, None]


@pytest.mark.parametrize("document", documents())
def test_writes_what_the_library_writes(document: Any) -> None:
    assert FAST.encode(document) == LIBRARY.encode(document)


@pytest.mark.parametrize("document", documents())
def test_the_library_reads_it_back(document: Any) -> None:
    assert LIBRARY.decode(FAST.encode(document)) == LIBRARY.decode(LIBRARY.encode(document))


def test_refuses_a_type_it_has_no_transcoding_for() -> None:
    with pytest.raises(TranscodingNotRegisteredError, match="complex"):
        FAST.encode({"value": 1j})
