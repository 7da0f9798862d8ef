"""Command handlers: load the resource(s), let them decide, append; on a lost race, decide again."""

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast
from uuid import UUID, uuid4

from commands.errors import BookingClosedError, BookingNotFoundError, ContentionError, DomainError
from commands.repository import ResourceRepository
from commands.resource import PENDING, Resource, Role
from events.resource import BookingCreated
from events.store import ConcurrencyError, RecordedEvent

Clock = Callable[[], datetime]
BookingLocator = Callable[[UUID], Awaitable[UUID | None]]
"""Finds the resource a booking belongs to (None: no such booking)."""
Decision = Callable[[dict[UUID, Resource], datetime], None]
Action = Literal["approve", "reject", "complete", "no_show"]


@dataclass(frozen=True, slots=True)
class RegisterResource:
    name: str
    timezone: str = "UTC"
    capacity: int = 1
    requires_approval: bool = False
    details: str | None = None
    rules: dict[str, Any] = field(default_factory=dict)
    actor: str | None = None


@dataclass(frozen=True, slots=True)
class UpdateResource:
    resource_id: UUID
    changes: dict[str, Any]
    actor: str | None = None


@dataclass(frozen=True, slots=True)
class RetireResource:
    resource_id: UUID
    reason: str | None = None
    actor: str | None = None


@dataclass(frozen=True, slots=True)
class AddClosure:
    resource_id: UUID
    start_time: datetime
    end_time: datetime
    reason: str | None = None
    actor: str | None = None


@dataclass(frozen=True, slots=True)
class RemoveClosure:
    resource_id: UUID
    closure_id: UUID
    actor: str | None = None


@dataclass(frozen=True, slots=True)
class CreateBooking:
    resource_id: UUID
    client_id: UUID
    start_time: datetime
    end_time: datetime
    details: str | None = None
    actor: str | None = None


@dataclass(frozen=True, slots=True)
class ModifyBooking:
    """Change time and/or details; a `resource_id` other than the booking's moves it there."""

    booking_id: UUID
    start_time: datetime | None = None
    end_time: datetime | None = None
    details: str | None = None
    resource_id: UUID | None = None
    actor: str | None = None
    by: Role = "client"


@dataclass(frozen=True, slots=True)
class CancelBooking:
    booking_id: UUID
    reason: str | None = None
    actor: str | None = None
    by: Role = "client"


@dataclass(frozen=True, slots=True)
class DecideBooking:
    """The owner's decisions on a booking: approve, reject, complete, no_show."""

    booking_id: UUID
    action: Action
    reason: str | None = None
    actor: str | None = None


class CommandHandlers:
    """Runs commands against resource streams; the only way the write model changes."""

    def __init__(
        self,
        repository: ResourceRepository,
        clock: Clock,
        locate_booking: BookingLocator,
        deadline_seconds: float = 10.0,
    ) -> None:
        self.repository = repository
        self.clock = clock
        self.locate_booking = locate_booking
        self.deadline_seconds = deadline_seconds

    async def register_resource(self, command: RegisterResource) -> UUID:
        resource = Resource.register(
            uuid4(),
            name=command.name,
            timezone=command.timezone,
            capacity=command.capacity,
            requires_approval=command.requires_approval,
            details=command.details,
            rules=command.rules,
            actor=command.actor,
            now=self.clock(),
        )
        await self.repository.save(resource)
        return resource.id

    async def update_resource(self, command: UpdateResource) -> None:
        def decide(resource: Resource, now: datetime) -> None:
            resource.update(command.changes, actor=command.actor, now=now)

        await self._on_resource(command.resource_id, decide)

    async def retire_resource(self, command: RetireResource) -> None:
        def decide(resource: Resource, now: datetime) -> None:
            resource.retire(reason=command.reason, actor=command.actor, now=now)

        await self._on_resource(command.resource_id, decide)

    async def add_closure(self, command: AddClosure) -> UUID:
        closure_id = uuid4()

        def decide(resource: Resource, now: datetime) -> None:
            resource.add_closure(
                closure_id,
                start=command.start_time,
                end=command.end_time,
                reason=command.reason,
                actor=command.actor,
                now=now,
            )

        await self._on_resource(command.resource_id, decide)
        return closure_id

    async def remove_closure(self, command: RemoveClosure) -> None:
        def decide(resource: Resource, now: datetime) -> None:
            resource.remove_closure(command.closure_id, actor=command.actor, now=now)

        await self._on_resource(command.resource_id, decide)

    async def create_booking(self, command: CreateBooking) -> BookingCreated:
        """Book the slot; the event that records the booking."""
        booking_id = uuid4()

        def decide(resource: Resource, now: datetime) -> None:
            resource.create_booking(
                booking_id,
                client_id=command.client_id,
                start=command.start_time,
                end=command.end_time,
                details=command.details,
                actor=command.actor,
                now=now,
            )

        [recorded] = await self._on_resource(command.resource_id, decide)
        return cast(BookingCreated, recorded.event)

    async def modify_booking(self, command: ModifyBooking) -> None:
        def modify(resource: Resource, now: datetime) -> None:
            resource.modify_booking(
                command.booking_id,
                start=command.start_time,
                end=command.end_time,
                details=command.details,
                actor=command.actor,
                now=now,
                by=command.by,
            )

        async def modify_or_move(resource_id: UUID) -> object:
            target = command.resource_id
            if target is None or target == resource_id:
                return await self._on_resource(resource_id, modify)

            def move(resources: dict[UUID, Resource], now: datetime) -> None:
                source, destination = resources[resource_id], resources[target]
                hold = source.move_out(
                    command.booking_id, destination, actor=command.actor, now=now, by=command.by
                )
                destination.move_in(
                    command.booking_id,
                    source=resource_id,
                    start=command.start_time or hold.start,
                    end=command.end_time or hold.end,
                    details=command.details,
                    actor=command.actor,
                    now=now,
                    due=hold.deadline if hold.status == PENDING else None,
                )

            return await self._decide([resource_id, target], move)

        await self._on_booking(command.booking_id, modify_or_move)

    async def cancel_booking(self, command: CancelBooking) -> None:
        def decide(resource: Resource, now: datetime) -> None:
            resource.cancel_booking(
                command.booking_id,
                reason=command.reason,
                actor=command.actor,
                now=now,
                by=command.by,
            )

        await self._on_booking(command.booking_id, lambda r: self._on_resource(r, decide))

    async def decide_booking(self, command: DecideBooking) -> None:
        def decide(resource: Resource, now: datetime) -> None:
            booking_id, reason, actor = command.booking_id, command.reason, command.actor
            match command.action:
                case "approve":
                    resource.approve_booking(booking_id, reason=reason, actor=actor, now=now)
                case "reject":
                    resource.reject_booking(booking_id, reason=reason, actor=actor, now=now)
                case "complete":
                    resource.complete_booking(booking_id, reason=reason, actor=actor, now=now)
                case "no_show":
                    resource.mark_no_show(booking_id, reason=reason, actor=actor, now=now)

        await self._on_booking(command.booking_id, lambda r: self._on_resource(r, decide))

    async def settle(self, resource_id: UUID) -> int:
        """Complete and expire what the clock has closed on one resource; how many changed."""

        def decide(resource: Resource, now: datetime) -> None:
            resource.settle(now)

        return len(await self._on_resource(resource_id, decide))

    def _on_resource(
        self, resource_id: UUID, decide: Callable[[Resource, datetime], None]
    ) -> Awaitable[Sequence[RecordedEvent]]:
        return self._decide([resource_id], lambda rs, now: decide(rs[resource_id], now))

    async def _on_booking(self, booking_id: UUID, act: Callable[[UUID], Awaitable[object]]) -> None:
        """Act on the resource that holds the booking. If the booking moved to another
        resource after it was located, the refusal on the old one sends the command after it."""
        resource_id = await self._resource_of(booking_id)
        while True:
            try:
                await act(resource_id)
                return
            except BookingClosedError:
                now_at = await self._resource_of(booking_id)
                if now_at == resource_id:
                    raise
                resource_id = now_at

    async def _resource_of(self, booking_id: UUID) -> UUID:
        resource_id = await self.locate_booking(booking_id)
        if resource_id is None:
            raise BookingNotFoundError(booking_id)
        return resource_id

    async def _decide(self, resource_ids: list[UUID], decide: Decision) -> Sequence[RecordedEvent]:
        """Load, decide and append, deciding again whenever another writer got there first.

        Several resources change in one atomic append; their locks are taken in a fixed order,
        so two commands on the same pair cannot deadlock. A cached resource may be behind the
        store (another process wrote since): an append on it fails; a refusal, or a decision
        that nothing needs to change, may be stale. Either way the decision is undone, the
        resource catches up with the events recorded since, and it is decided again (a refusal
        stands if the store recorded nothing since).

        Catching up reads only those few events. Loading whole would read and decode a snapshot
        of every open booking, long enough for the process that won to append again: a process
        that lost once would go on losing.
        """
        give_up = time.monotonic() + self.deadline_seconds
        repository = self.repository
        ordered = sorted(set(resource_ids))
        async with _All([repository.lock(r) for r in ordered]):
            loaded, current = await self._load(ordered)
            if not current and any(repository.shared(r) for r in ordered):
                loaded, current = await self._caught_up(loaded), True  # likely behind
            in_order = list(dict.fromkeys(resource_ids))  # a move's source before its target
            attempts = 0
            while True:
                versions = [(resource, resource.version) for resource in loaded.values()]
                try:
                    decide(loaded, self.clock())
                except DomainError:
                    for resource, version in versions:
                        resource.revert(version)  # changed before the refusal
                    if current:
                        raise  # refused on the store's state
                    loaded, current = await self._caught_up(loaded), True
                    if [r.version for r in loaded.values()] == [v for _, v in versions]:
                        raise  # the store had nothing more: refused on its state after all
                    continue
                except BaseException:
                    for r in ordered:
                        repository.forget(r)
                    raise
                if not current and not any(resource.pending_events for resource, _ in versions):
                    # "Nothing to do" may be stale too.
                    loaded, current = await self._caught_up(loaded), True
                    continue
                try:
                    return await repository.save(*(loaded[r] for r in in_order))
                except ConcurrencyError:
                    for resource, version in versions:
                        resource.revert(version)
                    if time.monotonic() > give_up:
                        names = ", ".join(str(r) for r in ordered)
                        raise ContentionError(f"Resource {names} is too busy; try again.") from None
                    attempts += 1
                    # Another process is writing this resource: give it room (and spread the
                    # retries of several losers) before reading what it wrote.
                    await asyncio.sleep(random.uniform(0, min(0.05, 0.002 * attempts)))
                    loaded, current = await self._caught_up(loaded), True

    async def _load(self, resource_ids: list[UUID]) -> tuple[dict[UUID, Resource], bool]:
        """The resources, from the cache where they are in it; and whether none was (all were
        read from the store now)."""
        loaded, current = {}, True
        for r in resource_ids:
            cached = self.repository.cached(r)
            if cached is None:
                loaded[r] = await self.repository.load(r)
            else:
                loaded[r], current = cached, False
        return loaded, current

    async def _caught_up(self, loaded: dict[UUID, Resource]) -> dict[UUID, Resource]:
        """The resources with the events the store recorded since their version applied."""
        return {r: await self.repository.catch_up(resource) for r, resource in loaded.items()}


class _All:
    """Holds every lock, taken in the given order (and let go in reverse)."""

    def __init__(self, locks: Iterable[asyncio.Lock]) -> None:
        self.locks = list(locks)
        self.held: list[asyncio.Lock] = []

    async def __aenter__(self) -> None:
        try:
            for lock in self.locks:
                await lock.acquire()
                self.held.append(lock)
        except BaseException:
            self._release()
            raise

    async def __aexit__(self, *_: object) -> None:
        self._release()

    def _release(self) -> None:
        while self.held:
            self.held.pop().release()
