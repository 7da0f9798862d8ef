"""The per-resource lock of a repository: one decision at a time per resource and process."""

import asyncio
import gc
from uuid import uuid4

from commands.repository import ResourceRepository


async def test_a_waited_for_lock_is_never_replaced() -> None:
    repository = ResourceRepository(store=None, cache_size=1)  # type: ignore[arg-type]
    resource_id = uuid4()
    inside = 0
    most_inside = 0

    async def decide() -> None:
        nonlocal inside, most_inside
        async with repository.lock(resource_id):
            inside += 1
            most_inside = max(most_inside, inside)
            await asyncio.sleep(0.01)
            # Many other resources come and go meanwhile.
            for _ in range(50):
                repository.lock(uuid4())
            gc.collect()
            inside -= 1

    await asyncio.gather(*(decide() for _ in range(20)))

    assert most_inside == 1


def test_locks_of_idle_resources_are_released() -> None:
    repository = ResourceRepository(store=None)  # type: ignore[arg-type]
    for _ in range(1000):
        repository.lock(uuid4())
    gc.collect()

    assert len(repository._locks) == 0
