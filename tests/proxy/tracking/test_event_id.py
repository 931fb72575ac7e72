"""Event ids (also trace ids and the beacon's page ids): UUIDv7 as 32 hex chars."""

from __future__ import annotations

import time
import uuid

from proxy.tracking.event import new_event_id


def test_event_ids_are_uuid7_with_the_current_ms_and_74_random_bits() -> None:
    before = time.time_ns() // 1_000_000
    ids = [new_event_id() for _ in range(5000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    varying, fixed = 0, (1 << 128) - 1
    for value in ids:
        assert len(value) == 32 and value == value.lower()
        u = uuid.UUID(value)
        assert u.version == 7 and u.variant == uuid.RFC_4122
        assert before <= int(value[:12], 16) <= after
        n = int(value, 16)
        varying |= n
        fixed &= n
    # Below the 48-bit time: the version nibble and the variant bits never change,
    # the 12 + 62 bits around them all do.
    random_bits = (varying ^ fixed) & ((1 << 80) - 1)
    assert random_bits == ((1 << 76) - 1) & ~(0b11 << 62)
