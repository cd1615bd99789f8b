"""Session ids are UUIDv7 (``store.sessions.time_ordered_uuid``): valid RFC 9562 UUIDs
whose order follows creation, so new sessions land at the primary key's right edge."""

from __future__ import annotations

import time
import uuid

from authsvc.store.sessions import time_ordered_uuid


def test_a_session_id_is_a_version_7_uuid():
    made = time_ordered_uuid()

    assert (made.version, made.variant) == (7, uuid.RFC_4122)
    assert str(uuid.UUID(str(made))) == str(made)


def test_later_ids_sort_after_earlier_ones_and_none_repeat():
    now = 1_800_000_000_000
    first = [time_ordered_uuid(now) for _ in range(1000)]
    later = time_ordered_uuid(now + 1)

    assert len(set(first)) == 1000
    assert later > max(first)
    assert abs((time_ordered_uuid().int >> 80) - time.time_ns() // 10**6) < 60_000  # ms now
