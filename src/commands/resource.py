"""The Resource aggregate: one stream per resource, the one place that decides its bookings.

It is pure: no I/O, and `now` is passed in. Its state holds the settings, the closures and the
bookings that are still open (pending or confirmed). A booking leaves the state with the event
that closes it (cancelled, rejected, expired, completed, no-show, moved out); `settle` records
those the clock has closed (completion after the end, expiry of undecided requests), so the state
grows with open bookings, never with history.
"""

from bisect import bisect_left, insort
from collections.abc import Iterator
from datetime import datetime, timedelta
from functools import cache, singledispatch
from importlib import resources
from typing import Any, Literal, TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Transcoding

from commands.errors import (
    BookingClosedError,
    ClosureNotFoundError,
    IllegalTransitionError,
    InvalidCommandError,
    ResourceRetiredError,
    RuleViolationError,
)
from commands.policy import (
    CONFIRMED,
    PENDING,
    RULE_NAMES,
    Closure,
    Hold,
    Policy,
    Rules,
    Status,
)
from events.resource import (
    BookingApproved,
    BookingCancelled,
    BookingCompleted,
    BookingCreated,
    BookingExpired,
    BookingModified,
    BookingMovedIn,
    BookingMovedOut,
    BookingNoShow,
    BookingRejected,
    ClosureAdded,
    ClosureRemoved,
    ResourceEvent,
    ResourceRegistered,
    ResourceRetired,
    ResourceUpdated,
)

__all__ = ["CONFIRMED", "PENDING", "Hold", "Resource", "Status"]

SETTLE_MARGIN = timedelta(minutes=1)
"""How long after a booking stops mattering `settle` waits to complete it: a margin for clocks,
so a process whose clock runs behind never decides on a state a process ahead already settled."""
Role = Literal["client", "owner"]
"""Who asks: notice rules on changes and cancellations bind clients, not the owner."""
SETTINGS = ("name", "timezone", "capacity", "requires_approval", "details")
"""The settings besides the rules that `update` may change."""
_V = TypeVar("_V")


class HoldAsList(Transcoding):
    """Stores a Hold in snapshots as a compact list."""

    type = Hold
    name = "hold"

    def encode(self, obj: Hold) -> list[Any]:
        deadline = obj.deadline.isoformat() if obj.deadline else None
        return [
            obj.booking_id.hex,
            obj.start.isoformat(),
            obj.end.isoformat(),
            obj.status,
            deadline,
        ]

    def decode(self, data: list[Any]) -> Hold:
        booking_id, start, end, status, deadline = data
        fromiso = datetime.fromisoformat
        return Hold(
            UUID(booking_id), fromiso(start), fromiso(end), status, deadline and fromiso(deadline)
        )


class ClosureAsList(Transcoding):
    type = Closure
    name = "closure"

    def encode(self, obj: Closure) -> list[Any]:
        return [obj.closure_id.hex, obj.start.isoformat(), obj.end.isoformat()]

    def decode(self, data: list[Any]) -> Closure:
        closure_id, start, end = data
        return Closure(UUID(closure_id), datetime.fromisoformat(start), datetime.fromisoformat(end))


class RulesAsDict(Transcoding):
    type = Rules
    name = "rules"

    def encode(self, obj: Rules) -> dict[str, Any]:
        return obj.to_dict()

    def decode(self, data: dict[str, Any]) -> Rules:
        return Rules(**data)


TRANSCODINGS = (HoldAsList(), ClosureAsList(), RulesAsDict())
"""What the store's mapper needs to write and read Resource snapshots."""


class _Starts:
    """The keys of holds by start time, so a slot is checked against the holds near it, not
    against every open booking of the resource."""

    __slots__ = ("keys", "longest")

    def __init__(self, holds: dict[str, Hold]) -> None:
        self.keys = sorted((hold.start, key) for key, hold in holds.items())
        self.longest = max((h.end - h.start for h in holds.values()), default=timedelta(0))
        """At least as long as the longest hold (it does not shrink when one goes)."""

    def add(self, key: str, hold: Hold) -> None:
        insort(self.keys, (hold.start, key))
        self.longest = max(self.longest, hold.end - hold.start)

    def remove(self, key: str, hold: Hold) -> None:
        del self.keys[bisect_left(self.keys, (hold.start, key))]

    def overlapping(self, start: datetime, end: datetime) -> Iterator[str]:
        """The keys of the holds that may overlap `[start, end)` (and a few that end before)."""
        keys, i = self.keys, bisect_left(self.keys, (start - self.longest,))
        while i < len(keys) and keys[i][0] < end:
            yield keys[i][1]
            i += 1


class Resource(Aggregate):
    """Something bookable: a room, a person, a piece of equipment."""

    # Slots, not attributes: no part of the state (snapshots and equality read `vars`).
    # `_starts`: the holds by start time, made when first needed and kept in step. `_undo`: the
    # state before the current decision and the holds and closures it changed, for `revert`.
    __slots__ = ("_starts", "_undo")
    _starts: _Starts
    _undo: tuple[dict[str, Any], list[tuple[str, Hold | None, Closure | None]]]

    def __init__(
        self,
        *,
        name: str,
        timezone: str,
        capacity: int,
        requires_approval: bool,
        details: str | None,
        rules: dict[str, Any] | None,
    ) -> None:
        self.name = name
        self.timezone = timezone
        self.capacity = capacity
        self.requires_approval = requires_approval
        self.details = details
        self.rules = Rules(**(rules or {}))
        self.retired = False
        self.holds: dict[str, Hold] = {}
        self.closures: dict[str, Closure] = {}

    @classmethod
    def register(
        cls,
        resource_id: UUID,
        *,
        name: str,
        timezone: str = "UTC",
        capacity: int = 1,
        requires_approval: bool = False,
        details: str | None = None,
        rules: dict[str, Any] | None = None,
        actor: str | None = None,
        now: datetime,
    ) -> "Resource":
        """Register a new resource."""
        _check_settings({"name": name, "timezone": timezone, "capacity": capacity})
        checked = Rules.of(rules)
        return cls._create(
            ResourceRegistered,
            id=resource_id,
            name=name,
            timezone=timezone,
            capacity=capacity,
            requires_approval=requires_approval,
            details=details,
            rules=checked.to_dict(),
            actor=actor,
            timestamp=now,
        )

    def trigger_event(self, event_class: Any, **kwargs: Any) -> None:
        """Record an event, as the library does, noting first what it changes so that `revert`
        can put it back: the attributes (once per decision), and the hold or closure of the
        booking or closure the event names (the `when` steps change nothing else)."""
        undo = getattr(self, "_undo", None)
        if undo is None or not self.pending_events:
            undo = self._undo = (dict(vars(self)), [])  # a new decision
        if (named := kwargs.get("booking_id") or kwargs.get("closure_id")) is not None:
            key = str(named)
            undo[1].append((key, self.holds.get(key), self.closures.get(key)))
        super().trigger_event(event_class, **kwargs)

    def revert(self, version: int) -> None:
        """Undo a decision taken at `version`: one refused half-way, or one whose events the
        store did not take (another writer was first). The state is as it was before."""
        if self.version == version:
            return  # nothing decided
        undo = getattr(self, "_undo", None)
        if undo is None or undo[0]["_version"] != version:
            raise ValueError(f"Resource {self.id} has no decision taken at version {version}.")
        before, changed = undo
        for key, hold, closure in reversed(changed):
            self._set_hold(key, hold)
            _put_back(self.closures, key, closure)
        vars(self).clear()
        vars(self).update(before)
        self.pending_events[:] = [e for e in self.pending_events if e.originator_version <= version]
        del self._undo

    @property
    def policy(self) -> Policy:
        return Policy(self.id, self.timezone, self.capacity, self.rules)

    # -- the owner's settings ------------------------------------------------------------------

    def update(self, changes: dict[str, Any], *, actor: str | None, now: datetime) -> None:
        """Change settings and rules; only the values that differ are recorded. Existing
        bookings keep their state; the new rules apply to what is decided from now on."""
        self._check_active()
        unknown = set(changes) - set(SETTINGS) - set(RULE_NAMES)
        if unknown:
            raise InvalidCommandError(f"Unknown settings: {', '.join(sorted(unknown))}.", "body")
        _check_settings(changes)
        rules = {k: v for k, v in changes.items() if k not in SETTINGS}
        Rules.of(self.rules.to_dict() | rules)
        current = {name: getattr(self, name) for name in SETTINGS} | self.rules.to_dict()
        differ = {k: v for k, v in changes.items() if current[k] != v}
        if differ:
            self.trigger_event(ResourceUpdated, changes=differ, actor=actor, timestamp=now)

    def retire(self, *, reason: str | None, actor: str | None, now: datetime) -> None:
        """Take no new bookings from now on; retiring twice changes nothing."""
        if not self.retired:
            self.trigger_event(ResourceRetired, reason=reason, actor=actor, timestamp=now)

    def add_closure(
        self,
        closure_id: UUID,
        *,
        start: datetime,
        end: datetime,
        reason: str | None,
        actor: str | None,
        now: datetime,
    ) -> None:
        """Close `[start, end)` to new bookings; bookings already there keep their state."""
        self._check_active()
        if end <= start:
            raise InvalidCommandError("end_time must be after start_time.", "end_time")
        if end <= now:
            raise InvalidCommandError("A closure must end in the future.", "end_time")
        self.trigger_event(
            ClosureAdded,
            closure_id=closure_id,
            start_time=start,
            end_time=end,
            reason=reason,
            actor=actor,
            timestamp=now,
        )

    def remove_closure(self, closure_id: UUID, *, actor: str | None, now: datetime) -> None:
        if str(closure_id) not in self.closures:
            raise ClosureNotFoundError(self.id, closure_id)
        self.trigger_event(ClosureRemoved, closure_id=closure_id, actor=actor, timestamp=now)

    # -- bookings -------------------------------------------------------------------------------

    def create_booking(
        self,
        booking_id: UUID,
        *,
        client_id: UUID,
        start: datetime,
        end: datetime,
        details: str | None,
        actor: str | None,
        now: datetime,
    ) -> None:
        """Book `[start, end)` for a client; pending if the resource requires approval."""
        status, deadline = self._admit(start, end, now)
        self.trigger_event(
            BookingCreated,
            booking_id=booking_id,
            client_id=client_id,
            start_time=start,
            end_time=end,
            details=details,
            status=status,
            approval_deadline=deadline,
            actor=actor,
            timestamp=now,
        )

    def modify_booking(
        self,
        booking_id: UUID,
        *,
        start: datetime | None,
        end: datetime | None,
        details: str | None,
        actor: str | None,
        now: datetime,
        by: Role = "client",
    ) -> None:
        """Move a booking in time and/or change its details; the new time re-checks every rule."""
        hold = self._open_hold(booking_id, now)
        new_start, new_end = start or hold.start, end or hold.end
        moved = (new_start, new_end) != (hold.start, hold.end)
        if not moved and details is None:
            return
        self._check_notice(hold, now, by, "change_notice_minutes", "changed")
        if moved:
            if new_end <= new_start:
                raise InvalidCommandError("end_time must be after start_time.", "end_time")
            if new_start != hold.start and new_start < now:
                raise InvalidCommandError("A booking cannot be moved into the past.", "start_time")
            if new_end <= now:
                raise InvalidCommandError("end_time must be in the future.", "end_time")
            policy = self.policy
            policy.check_slot(
                new_start,
                new_end,
                now,
                holds=self._holds_around(policy, new_start, new_end),
                closures=self.closures.values(),
                ignoring=booking_id,
                start_changed=new_start != hold.start,
            )
        self.trigger_event(
            BookingModified,
            booking_id=booking_id,
            start_time=new_start if new_start != hold.start else None,
            end_time=new_end if new_end != hold.end else None,
            details=details,
            actor=actor,
            timestamp=now,
        )

    def cancel_booking(
        self,
        booking_id: UUID,
        *,
        reason: str | None,
        actor: str | None,
        now: datetime,
        by: Role = "client",
    ) -> None:
        """Cancel a booking that is still open; its time becomes free."""
        hold = self._open_hold(booking_id, now)
        self._check_notice(hold, now, by, "cancel_notice_minutes", "cancelled")
        self.trigger_event(
            BookingCancelled,
            booking_id=booking_id,
            reason=reason,
            by=by,
            actor=actor,
            timestamp=now,
        )

    def approve_booking(
        self, booking_id: UUID, *, reason: str | None = None, actor: str | None, now: datetime
    ) -> None:
        """Confirm a pending booking; the slot is checked again as it stands now, against the
        confirmed bookings (the first request approved wins)."""
        hold = self._pending(booking_id, now, "approved")
        policy = self.policy
        policy.check_closures(self.closures.values(), hold.start, hold.end)
        confirmed = [h for h in self.holds.values() if h.status == CONFIRMED]
        policy.check_room(confirmed, hold.start, hold.end, now)
        self.trigger_event(
            BookingApproved, booking_id=booking_id, reason=reason, actor=actor, timestamp=now
        )

    def reject_booking(
        self, booking_id: UUID, *, reason: str | None, actor: str | None, now: datetime
    ) -> None:
        """Turn a pending booking down."""
        self._pending(booking_id, now, "rejected")
        self.trigger_event(
            BookingRejected, booking_id=booking_id, reason=reason, actor=actor, timestamp=now
        )

    def complete_booking(
        self, booking_id: UUID, *, reason: str | None = None, actor: str | None, now: datetime
    ) -> None:
        """Record that a confirmed booking took place (once it has started)."""
        self._started(booking_id, now, "completed")
        self.trigger_event(
            BookingCompleted,
            booking_id=booking_id,
            automatic=False,
            reason=reason,
            actor=actor,
            timestamp=now,
        )

    def mark_no_show(
        self, booking_id: UUID, *, reason: str | None = None, actor: str | None, now: datetime
    ) -> None:
        """Record that the client of a confirmed booking did not come (once it has started)."""
        self._started(booking_id, now, "marked as a no-show")
        self.trigger_event(
            BookingNoShow, booking_id=booking_id, reason=reason, actor=actor, timestamp=now
        )

    def settle(self, now: datetime) -> None:
        """Close what time has closed: expire pending bookings nobody decided in time, and
        complete confirmed ones that can no longer matter to any new booking (their end and both
        buffers are behind `now`, by `SETTLE_MARGIN`). Idempotent: a settled booking leaves the
        state."""
        before, after = self.policy.buffers()
        done_by = now - before - after - SETTLE_MARGIN
        for hold in sorted(self.holds.values(), key=lambda h: (h.end, h.booking_id)):
            if hold.status == CONFIRMED and hold.end <= done_by:
                self.trigger_event(
                    BookingCompleted,
                    booking_id=hold.booking_id,
                    automatic=True,
                    actor=None,
                    timestamp=now,
                )
            elif hold.status == PENDING and hold.decide_by <= now:
                self.trigger_event(
                    BookingExpired, booking_id=hold.booking_id, actor=None, timestamp=now
                )

    def move_out(
        self, booking_id: UUID, to: "Resource", *, actor: str | None, now: datetime, by: Role
    ) -> Hold:
        """Let a booking leave for resource `to` (which then takes it in); returns its hold."""
        hold = self._open_hold(booking_id, now)
        self._check_notice(hold, now, by, "change_notice_minutes", "changed")
        self.trigger_event(
            BookingMovedOut, booking_id=booking_id, to_resource_id=to.id, actor=actor, timestamp=now
        )
        return hold

    def move_in(
        self,
        booking_id: UUID,
        *,
        source: UUID,
        start: datetime,
        end: datetime,
        details: str | None,
        actor: str | None,
        now: datetime,
        due: datetime | None = None,
    ) -> None:
        """Take in a booking from another resource: checked here like a new booking. A request
        that was already waiting (`due`: its approval deadline) keeps the earlier deadline, so
        moving it around does not buy it time."""
        status, deadline = self._admit(start, end, now)
        if status == PENDING and due is not None:
            deadline = min(deadline or due, due)
        self.trigger_event(
            BookingMovedIn,
            booking_id=booking_id,
            from_resource_id=source,
            start_time=start,
            end_time=end,
            status=status,
            details=details,
            approval_deadline=deadline,
            actor=actor,
            timestamp=now,
        )

    # -- checks -------------------------------------------------------------------------------

    def _admit(
        self, start: datetime, end: datetime, now: datetime
    ) -> tuple[Status, datetime | None]:
        """Check a new slot against every rule; the status and approval deadline it gets."""
        self._check_active()
        if end <= start:
            raise InvalidCommandError("end_time must be after start_time.", "end_time")
        if start < now:
            raise InvalidCommandError("start_time must not be in the past.", "start_time")
        policy = self.policy
        holds = self._holds_around(policy, start, end)
        policy.check_slot(start, end, now, holds=holds, closures=self.closures.values())
        if not self.requires_approval:
            return CONFIRMED, None
        window = self.rules.approval_window_minutes
        return PENDING, now + timedelta(minutes=window) if window else None

    def _check_active(self) -> None:
        if self.retired:
            raise ResourceRetiredError(self.id)

    def _holds_around(self, policy: Policy, start: datetime, end: datetime) -> list[Hold]:
        """The holds that may overlap a slot, its buffers and theirs (by `policy`) included."""
        starts = getattr(self, "_starts", None)
        if starts is None:
            starts = self._starts = _Starts(self.holds)
        before, after = policy.buffers()
        near = starts.overlapping(start - before - after, end + before + after)
        return [self.holds[key] for key in near]

    def _set_hold(self, key: str, hold: Hold | None) -> None:
        """Put, replace or (None) drop a hold; every change to `holds` goes through here."""
        starts = getattr(self, "_starts", None)
        if starts is not None:
            if (old := self.holds.get(key)) is not None:
                starts.remove(key, old)
            if hold is not None:
                starts.add(key, hold)
        _put_back(self.holds, key, hold)

    def _hold(self, booking_id: UUID) -> Hold:
        hold = self.holds.get(str(booking_id))
        if hold is None:
            raise BookingClosedError(booking_id)
        return hold

    def _open_hold(self, booking_id: UUID, now: datetime) -> Hold:
        """The booking, if it can still change: open, not over, and not expiring."""
        hold = self._hold(booking_id)
        if hold.end <= now or (hold.status == PENDING and hold.decide_by <= now):
            raise BookingClosedError(booking_id)
        return hold

    def _pending(self, booking_id: UUID, now: datetime, action: str) -> Hold:
        hold = self._hold(booking_id)
        if hold.status != PENDING:
            raise IllegalTransitionError(booking_id, hold.status, action)
        if hold.decide_by <= now:
            why = "it was not decided in time and expires"
            raise IllegalTransitionError(booking_id, hold.status, action, why)
        return hold

    def _started(self, booking_id: UUID, now: datetime, action: str) -> Hold:
        hold = self._hold(booking_id)
        if hold.status != CONFIRMED:
            raise IllegalTransitionError(booking_id, hold.status, action)
        if now < hold.start:
            raise IllegalTransitionError(booking_id, hold.status, action, "it has not started")
        return hold

    def _check_notice(self, hold: Hold, now: datetime, by: Role, rule: str, action: str) -> None:
        """Clients must change or cancel at least the rule's minutes before the start."""
        notice = getattr(self.rules, rule)
        if by == "client" and notice and now > hold.start - timedelta(minutes=notice):
            msg = f"A booking here can be {action} up to {notice} minutes before it starts."
            raise RuleViolationError(
                rule.removesuffix("_minutes").replace("_", "-"), msg, "start_time"
            )

    def when(self, event: ResourceEvent) -> None:
        """Apply an event to the state (events are applied, never decided, here): `_apply`."""
        _apply(event, self)


# -- applying events ---------------------------------------------------------------------------


@singledispatch
def _apply(event: ResourceEvent, resource: Resource) -> None:
    """Apply an event to a resource's state. A step sets attributes and the hold or closure of
    the booking or closure its event names, nothing else: `Resource.revert` puts back only those.
    (A function, not a `singledispatchmethod`: that one builds a new bound function on every
    call, which cost about 4 µs of each decision.)"""
    raise NotImplementedError(type(event).__name__)


@_apply.register
def _(event: ResourceUpdated, resource: Resource) -> None:
    rules = {}
    for name, value in event.changes.items():
        if name in SETTINGS:
            setattr(resource, name, value)
        else:
            rules[name] = value
    if rules:
        resource.rules = Rules(**(resource.rules.to_dict() | rules))


@_apply.register
def _(event: ResourceRetired, resource: Resource) -> None:
    resource.retired = True


@_apply.register
def _(event: ClosureAdded, resource: Resource) -> None:
    closure = Closure(event.closure_id, event.start_time, event.end_time)
    resource.closures[str(event.closure_id)] = closure


@_apply.register
def _(event: ClosureRemoved, resource: Resource) -> None:
    resource.closures.pop(str(event.closure_id), None)


@_apply.register(BookingCreated)
@_apply.register(BookingMovedIn)
def _(event: BookingCreated | BookingMovedIn, resource: Resource) -> None:
    resource._set_hold(
        str(event.booking_id),
        Hold(
            event.booking_id,
            event.start_time,
            event.end_time,
            event.status,
            event.approval_deadline,
        ),
    )


@_apply.register
def _(event: BookingModified, resource: Resource) -> None:
    key = str(event.booking_id)
    hold = resource.holds[key]
    resource._set_hold(
        key,
        Hold(
            hold.booking_id,
            event.start_time or hold.start,
            event.end_time or hold.end,
            hold.status,
            hold.deadline,
        ),
    )


@_apply.register
def _(event: BookingApproved, resource: Resource) -> None:
    key = str(event.booking_id)
    hold = resource.holds[key]
    resource._set_hold(key, Hold(hold.booking_id, hold.start, hold.end, CONFIRMED))


@_apply.register(BookingCancelled)
@_apply.register(BookingRejected)
@_apply.register(BookingExpired)
@_apply.register(BookingCompleted)
@_apply.register(BookingNoShow)
@_apply.register(BookingMovedOut)
def _(event: Any, resource: Resource) -> None:
    resource._set_hold(str(event.booking_id), None)


@cache
def _zone_names() -> frozenset[str]:
    """The IANA zone names, as the tzdata package lists them (the system's folder also holds
    files such as `localtime` that are not zones)."""
    return frozenset(resources.files("tzdata").joinpath("zones").read_text().split())


def _put_back(entries: dict[str, _V], key: str, value: _V | None) -> None:
    """Set `entries[key]` to what it was: `value`, or absent."""
    if value is None:
        entries.pop(key, None)
    else:
        entries[key] = value


def _check_settings(values: dict[str, Any]) -> None:
    if "name" in values and not values["name"].strip():
        raise InvalidCommandError("A resource needs a non-blank name.", "name")
    if "capacity" in values and values["capacity"] < 1:
        raise InvalidCommandError("Capacity must be at least 1.", "capacity")
    if "timezone" in values and values["timezone"] not in _zone_names():
        msg = f"Unknown IANA time zone {values['timezone']!r}."
        raise InvalidCommandError(msg, "timezone")
