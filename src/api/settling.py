"""The policy that records what the clock decides: bookings completing after their end and
pending requests expiring, run in the background of every server process.

Idempotent: settling a resource twice, or from two processes at once, records each closing
once (the second decision finds nothing left to close).
"""

import asyncio
import logging
from typing import Any

from commands.errors import DomainError
from commands.handlers import CommandHandlers
from commands.resource import SETTLE_MARGIN
from projections import bookings

log = logging.getLogger(__name__)


async def settle_due(pool: Any, commands: CommandHandlers, batch: int = 100) -> int:
    """Settle every resource with bookings due now; the number of events recorded."""
    total = 0
    while resource_ids := await bookings.due(pool, commands.clock(), SETTLE_MARGIN, batch):
        recorded = 0
        for resource_id in resource_ids:
            try:
                recorded += await commands.settle(resource_id)
            except DomainError as error:  # contention: the next round tries again
                log.warning("settling resource %s: %s", resource_id, error)
        total += recorded
        if not recorded:
            break
    return total


async def keep_settling(pool: Any, commands: CommandHandlers, interval: float) -> None:
    """Settle due bookings every `interval` seconds until cancelled."""
    while True:
        try:
            await settle_due(pool, commands)
        except Exception:
            log.exception("settling due bookings failed; trying again in %s s", interval)
        await asyncio.sleep(interval)
