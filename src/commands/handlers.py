"""Command handlers: load the resource, let it decide, append; on a lost race, decide again."""

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID, uuid4

from commands.errors import BookingNotFoundError, ContentionError, DomainError
from commands.repository import ResourceRepository
from commands.resource import Resource
from events.store import ConcurrencyError, RecordedEvent

Clock = Callable[[], datetime]
BookingLocator = Callable[[UUID], Awaitable[UUID | None]]
"""Finds the resource a booking belongs to (None: no such booking)."""


@dataclass(frozen=True, slots=True)
class RegisterResource:
    name: str
    timezone: str = "UTC"
    capacity: int = 1
    requires_approval: bool = False
    details: str | None = None
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
    booking_id: UUID
    start_time: datetime | None = None
    end_time: datetime | None = None
    details: str | None = None
    actor: str | None = None


@dataclass(frozen=True, slots=True)
class CancelBooking:
    booking_id: UUID
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
            actor=command.actor,
            now=self.clock(),
        )
        await self.repository.save(resource)
        return resource.id

    async def create_booking(self, command: CreateBooking) -> UUID:
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

        await self._decide(command.resource_id, decide)
        return booking_id

    async def modify_booking(self, command: ModifyBooking) -> None:
        def decide(resource: Resource, now: datetime) -> None:
            resource.modify_booking(
                command.booking_id,
                start=command.start_time,
                end=command.end_time,
                details=command.details,
                actor=command.actor,
                now=now,
            )

        await self._decide(await self._resource_of(command.booking_id), decide)

    async def cancel_booking(self, command: CancelBooking) -> None:
        def decide(resource: Resource, now: datetime) -> None:
            resource.cancel_booking(
                command.booking_id, reason=command.reason, actor=command.actor, now=now
            )

        await self._decide(await self._resource_of(command.booking_id), decide)

    async def _resource_of(self, booking_id: UUID) -> UUID:
        resource_id = await self.locate_booking(booking_id)
        if resource_id is None:
            raise BookingNotFoundError(booking_id)
        return resource_id

    async def _decide(
        self, resource_id: UUID, decide: Callable[[Resource, datetime], None]
    ) -> Sequence[RecordedEvent]:
        """Load, decide and append, deciding again whenever another writer got there first.

        A cached resource may be behind the store (another process wrote since): an append on
        it fails and is decided again; a refusal is decided again on the store's state.
        """
        give_up = time.monotonic() + self.deadline_seconds
        async with self.repository.lock(resource_id):
            resource = self.repository.cached(resource_id)
            attempts = 0
            while True:
                fresh = resource is None
                if resource is None:
                    resource = await self.repository.load(resource_id)
                try:
                    decide(resource, self.clock())
                except DomainError:
                    if fresh:
                        raise  # refused before any event: the state is unchanged
                    resource = None
                    continue
                except BaseException:
                    self.repository.forget(resource_id)
                    raise
                try:
                    return await self.repository.save(resource)
                except ConcurrencyError:
                    resource = None
                    if time.monotonic() > give_up:
                        msg = f"Resource {resource_id} is too busy; try again."
                        raise ContentionError(msg) from None
                    attempts += 1
                    # Another process is writing this resource: let it finish before reloading.
                    await asyncio.sleep(random.uniform(0, min(0.05, 0.002 * attempts)))
