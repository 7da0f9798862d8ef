"""Loads and saves Resource aggregates: snapshot plus newer events, a per-process cache.

The cache only saves reads: every save appends at the next version, so a cached aggregate that
another process has moved past loses the append (`ConcurrencyError`); the caller undoes its
decision (`Resource.revert`) and catches the aggregate up with the events since. Mostly the cache
is not behind: it hears what the other processes append (`events.appended`, ADR 0010).
"""

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import partial
from typing import cast
from uuid import UUID
from weakref import WeakValueDictionary

from commands.errors import ResourceNotFoundError
from commands.resource import Resource
from events.store import DomainEvent, EventStore, RecordedEvent

log = logging.getLogger(__name__)

SHARED_FOR = 16
"""How many catch-ups in a row must find nothing new before a resource that other processes
wrote is decided on from the cache again without catching up first."""


class ResourceRepository:
    """Keeps the resources this process decided on recently; loads the others from the store.

    Resources that other processes write too are kept current by what this process hears of
    their appends (`wants`, `heard`, `missed`). Where that fails (notifications lost, or a
    connection pooler that does not pass them on), a cached resource is mostly behind the store:
    deciding on it would lose the append (and with it the round trip, and the group of appends it
    went out with). So while catch-ups keep finding events written elsewhere, the resource is
    `shared`, and decisions catch it up first: one small read. Not while this process hears the
    others (`hearing`): then a catch-up that finds events follows a race that a decision lost to
    an append whose notification was still on its way, and the next decision is mostly current.

    A stream is snapshotted every `snapshot_every` events, or, when that is more, every half as
    many events as the resource has open bookings. A snapshot costs in proportion to them
    (3,000 open bookings: about 10 ms of the process's CPU and 570 kB to write), so a busy
    resource would spend most of its time on snapshots. This way a snapshot costs each event a
    few microseconds. With `spread`, each resource's interval is longer by up to a half, by its
    id: resources that are booked alike (the benchmark books 200 in turn) would otherwise all
    take their snapshots at once, and PostgreSQL then spent up to 0.3 s on one statement of
    them. A load replays no more events than one and a half intervals.
    """

    def __init__(
        self,
        store: EventStore,
        snapshot_every: int = 100,
        cache_size: int = 10_000,
        *,
        spread: bool = True,
    ):
        self.store = store
        self.snapshot_every = snapshot_every
        self.cache_size = cache_size
        self.spread = spread
        self._cache: OrderedDict[UUID, Resource] = OrderedDict()
        self._shared: dict[UUID, int] = {}  # catch-ups that must still find nothing new
        self._snapshotted: dict[UUID, int] = {}  # the version of the latest snapshot known
        self._later: dict[UUID, list[DomainEvent]] = {}  # heard while a decision held it
        self.hearing = False
        """Whether what other processes append is heard: something was since this process last
        (re)started to listen (`missed(None)`)."""
        # A lock lives as long as someone holds or awaits it.
        self._locks: WeakValueDictionary[UUID, _Lock] = WeakValueDictionary()

    def lock(self, resource_id: UUID) -> asyncio.Lock:
        """The lock that serialises this process's decisions on one resource. What is heard of
        the resource while it is held is applied when it is let go."""
        lock = self._locks.get(resource_id)
        if lock is None:
            lock = self._locks[resource_id] = _Lock(partial(self._heard_later, resource_id))
        return lock

    def cached(self, resource_id: UUID) -> Resource | None:
        """The resource as this process last saw it (it may be behind the store), if at all."""
        resource = self._cache.get(resource_id)
        if resource is not None:
            self._cache.move_to_end(resource_id)
        return resource

    async def load(self, resource_id: UUID) -> Resource:
        """The resource at its latest version in the store."""
        snapshot, events = await self.store.load(resource_id)
        if snapshot is None and not events:
            raise ResourceNotFoundError(resource_id)
        self._snapshotted[resource_id] = snapshot.originator_version if snapshot else 0
        resource = cast(Resource | None, snapshot.mutate(None) if snapshot else None)
        for event in events:
            resource = cast(Resource, event.mutate(resource))
        assert resource is not None
        self._remember(resource)
        return resource

    async def catch_up(self, resource: Resource) -> Resource:
        """The resource with the events recorded after its version applied (often none)."""
        missed = await self.store.read_stream(resource.id, after_version=resource.version)
        for recorded in missed:
            resource = cast(Resource, recorded.event.mutate(resource))
        left = SHARED_FOR if missed and not self.hearing else self._shared.get(resource.id, 0) - 1
        if left > 0:
            self._shared[resource.id] = left
        else:
            self._shared.pop(resource.id, None)
        self._remember(resource)
        return resource

    def shared(self, resource_id: UUID) -> bool:
        """Whether other processes wrote the resource lately: catch up before deciding."""
        return resource_id in self._shared

    async def save(self, *resources: Resource) -> Sequence[RecordedEvent]:
        """Save the new events of one or more resources atomically; cache them on success."""
        pending = [event for resource in resources for event in resource.collect_events()]
        if not pending:
            return []
        try:
            recorded = await self.store.append(pending)
        except BaseException:
            for resource in resources:
                self.forget(resource.id)
            raise
        snapshots = []
        for resource in resources:
            self._remember(resource)
            if self._snapshot_due(resource):
                snapshots.append(Resource.Snapshot.take(resource))
                self._snapshotted[resource.id] = resource.version
        self.store.save_snapshots(snapshots)
        return recorded

    def _snapshot_due(self, resource: Resource) -> bool:
        every = max(self.snapshot_every, len(resource.holds) // 2)
        if self.spread:
            every += resource.id.int % (every // 2 + 1)
        return resource.version - self._snapshotted.get(resource.id, 0) >= every

    # -- following what other processes append (`events.appended.Follower`) ------------------

    def wants(self, stream_id: UUID, version: int) -> bool:
        """Whether the event would bring a cached resource forward: it is newer than the
        cached version."""
        resource = self._cache.get(stream_id)
        return resource is not None and version > resource.version

    def heard(self, event: DomainEvent) -> None:
        """Apply an event that any process recorded to the cached resource, if `wants` it. One
        that does not follow the cached version (the ones between went unheard) drops the
        resource instead. While a decision on the resource is under way, the event waits for
        it to end: the decision works on the cached resource (if the event took its version,
        its append fails and it catches up)."""
        resource_id, version = event.originator_id, event.originator_version
        if not self.wants(resource_id, version):
            return
        self.hearing = True
        lock = self._locks.get(resource_id)
        if lock is not None and lock.locked():
            self._later.setdefault(resource_id, []).append(event)
            return
        resource = self._cache[resource_id]
        if version == resource.version + 1:
            event.mutate(resource)
        else:
            self.forget(resource_id)

    def _heard_later(self, resource_id: UUID) -> None:
        """Apply what was heard of the resource while a decision held it (those the decision
        brought it past are skipped). It runs as the lock is let go: nothing may escape it."""
        try:
            for event in self._later.pop(resource_id, ()):
                self.heard(event)
        except Exception:
            log.exception("what was heard of resource %s could not be applied", resource_id)
            self.forget(resource_id)

    def missed(self, stream_id: UUID | None) -> None:
        """Drop a resource whose events went unheard (None: every resource)."""
        if stream_id is not None:
            self.forget(stream_id)
        else:
            self._cache.clear()
            self._shared.clear()
            self._later.clear()
            self.hearing = False

    def forget(self, resource_id: UUID) -> None:
        """Drop a cached resource, so the next `get` reads it from the store. (The version of
        its latest snapshot stays known: the store's only grows.)"""
        self._cache.pop(resource_id, None)
        self._shared.pop(resource_id, None)
        self._later.pop(resource_id, None)

    def _remember(self, resource: Resource) -> None:
        self._cache[resource.id] = resource
        self._cache.move_to_end(resource.id)
        while len(self._cache) > self.cache_size:
            gone, _ = self._cache.popitem(last=False)
            self._shared.pop(gone, None)
            self._snapshotted.pop(gone, None)
            self._later.pop(gone, None)


class _Lock(asyncio.Lock):
    """A resource's lock, which calls `released` each time it is let go (before anyone waiting
    for it takes it)."""

    def __init__(self, released: Callable[[], None]) -> None:
        super().__init__()
        self._released = released

    def release(self) -> None:
        super().release()
        self._released()
