"""Re-encryption of stored secrets with the newest key."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from crmhost.security.rotation import rotate_all
from crmhost.worker.serial import SLICE_S

__all__ = ["rotate_keys"]

log = logging.getLogger(__name__)

#: slices in a row that may run out of time before the job gives up (a table that cannot be
#: re-encrypted within hours has something wrong with it)
MAX_PARTS = 500


async def rotate_keys(ctx: dict[str, Any], *, part: int = 0) -> int:
    """Re-encrypt every stored secret with the newest key; returns how many values changed.

    Idempotent: values already under the newest key are skipped, and each batch commits on
    its own. After :data:`~crmhost.worker.serial.SLICE_S` the batch in progress is rolled back
    and the rotation continues in a new job (``rotate-keys:<part>``), well inside the job
    timeout; the count is then that of the last part.
    """
    host = ctx["host"]
    try:
        async with asyncio.timeout(SLICE_S):
            return await rotate_all(host)
    except TimeoutError:
        if part + 1 >= MAX_PARTS:
            raise
        log.info("key rotation: part %d out of time; continuing in a new job", part)
        await host.job_queue().enqueue("rotate_keys", job_id=f"rotate-keys:{part + 1}", part=part + 1)
        return 0
