"""A plugin for the crash test: an operation that records its effect once per idempotency key.

It stands for a vendor that honours idempotency keys (Stripe's ``Idempotency-Key``, a ledger's unique key):
the effect lands at most once per key however often it is attempted; the attempts are counted too.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
from typing import Any

from opsrail.engine import CallContext, Operations


def _record(key: str) -> None:
    with sqlite3.connect(os.environ["OPSRAIL_TEST_EFFECTS"], timeout=30) as db:
        db.execute("CREATE TABLE IF NOT EXISTS effects (key TEXT PRIMARY KEY, attempts INTEGER NOT NULL)")
        db.execute(
            "INSERT INTO effects (key, attempts) VALUES (?, 1) ON CONFLICT (key) DO UPDATE SET attempts = attempts + 1",
            (key,),
        )


async def effect(params: dict[str, Any], call: CallContext) -> Any:
    # The pause widens the window in which a kill lands between the effect and the step's commit.
    await asyncio.sleep(random.uniform(0, 0.02))
    _record(call.idempotency_key)
    await asyncio.sleep(random.uniform(0.05, 0.3))
    return {"done": call.idempotency_key}


def register(operations: Operations) -> None:
    operations.register("test.effect", effect)
