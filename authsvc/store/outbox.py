"""SQL for the outbox: messages written with the change that causes them.

``enqueue`` runs inside the change's transaction, so a change that rolls back
leaves no message. Senders ``claim`` due rows with a lease in one statement
(``FOR UPDATE SKIP LOCKED``): several workers and replicas never claim one
row at once, and a sender that dies mid-send leaves a lease that runs out, so
the row is sent later by someone else (at least once; the message id lets a
receiver drop the rare duplicate). Leases are short and a live sender
``renew``s its own while a send goes on. A claim is known by the row's id and
its ``attempts`` after the claim (each claim adds one), so a sender whose lease
ran out and was taken over can neither renew nor reschedule the new owner's
claim. Every time is the database's.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    kind: str
    channel: str
    recipient: str
    payload: bytes
    attempts: int


async def enqueue(conn: asyncpg.Connection, kind: str, channel: str, recipient: str,
                  payload: bytes) -> int:
    return int(await conn.fetchval(
        "INSERT INTO outbox (kind, channel, recipient, payload) VALUES ($1, $2, $3, $4)"
        " RETURNING id", kind, channel, recipient, payload))


async def claim(conn: asyncpg.Connection, channels: list[str], limit: int,
                lease: float, sending: list[int] | None = None) -> list[Message]:
    """Lease up to ``limit`` due messages of ``channels`` for ``lease`` seconds, oldest first;
    each claim counts as an attempt. ``sending``: ids the caller is sending already (never
    claimed again by it, even when their lease ran out)."""
    rows = await conn.fetch(
        "UPDATE outbox o SET leased_until = now() + make_interval(secs => $3::float8),"
        "       attempts = o.attempts + 1"
        " WHERE o.id IN (SELECT id FROM outbox"
        "                 WHERE sent_at IS NULL AND failed_at IS NULL"
        "                   AND next_attempt_at <= now() AND channel = ANY($1::text[])"
        "                   AND (leased_until IS NULL OR leased_until <= now())"
        "                   AND id <> ALL($4::bigint[])"
        "                 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)"
        " RETURNING o.id, o.kind, o.channel, o.recipient, o.payload, o.attempts",
        channels, limit, float(lease), sending or [])
    return sorted((Message(r["id"], r["kind"], r["channel"], r["recipient"],
                           bytes(r["payload"]), r["attempts"]) for r in rows),
                  key=lambda m: m.id)


async def renew(conn: asyncpg.Connection, claims: list[tuple[int, int]], lease: float,
                ) -> list[int]:
    """Extend the leases of ``claims`` (id, attempts) to ``lease`` seconds from now; the
    ids still ours (not sent, failed or claimed again by someone else)."""
    if not claims:
        return []
    rows = await conn.fetch(
        "UPDATE outbox o SET leased_until = now() + make_interval(secs => $3::float8)"
        " FROM unnest($1::bigint[], $2::integer[]) AS c(id, attempts)"
        " WHERE o.id = c.id AND o.attempts = c.attempts"
        "   AND o.sent_at IS NULL AND o.failed_at IS NULL"
        " RETURNING o.id", [c[0] for c in claims], [c[1] for c in claims], float(lease))
    return sorted(r["id"] for r in rows)


async def release(conn: asyncpg.Connection, claims: list[tuple[int, int]]) -> None:
    """Give ``claims`` (id, attempts) back unsent, due at once (a sender that stops)."""
    if claims:
        await conn.execute(
            "UPDATE outbox o SET leased_until = NULL"
            " FROM unnest($1::bigint[], $2::integer[]) AS c(id, attempts)"
            " WHERE o.id = c.id AND o.attempts = c.attempts AND o.sent_at IS NULL",
            [c[0] for c in claims], [c[1] for c in claims])


async def sent(conn: asyncpg.Connection, message_id: int) -> None:
    """Delivered: the payload (and the code in it) is wiped."""
    await conn.execute(
        "UPDATE outbox SET sent_at = now(), payload = NULL, leased_until = NULL,"
        " last_error = NULL WHERE id = $1", message_id)


async def retry_later(conn: asyncpg.Connection, message_id: int, delay: float, error: str,
                      max_attempts: int, attempts: int | None = None) -> bool:
    """Not delivered: due again in ``delay`` seconds, or failed for good once it has had
    ``max_attempts``; True when it failed for good (kept, for ``authsvc outbox``).
    With ``attempts``, only while the claim is still that one (not taken over)."""
    failed = await conn.fetchval(
        "UPDATE outbox SET leased_until = NULL, last_error = $3,"
        " next_attempt_at = now() + make_interval(secs => $2::float8),"
        " failed_at = CASE WHEN attempts >= $4 THEN now() END"
        " WHERE id = $1 AND sent_at IS NULL AND ($5::integer IS NULL OR attempts = $5)"
        " RETURNING failed_at IS NOT NULL",
        message_id, float(delay), error[:200], max_attempts, attempts)
    return bool(failed)


async def listing(conn: asyncpg.Connection, *, include_sent: bool, limit: int,
                  ) -> list[dict[str, object]]:
    """Pending and failed messages (and sent ones if asked), oldest first, without
    their payloads."""
    rows = await conn.fetch(
        "SELECT id, kind, channel, recipient, created_at, attempts, next_attempt_at,"
        " sent_at, failed_at, last_error FROM outbox WHERE $1 OR sent_at IS NULL"
        " ORDER BY id LIMIT $2", include_sent, limit)
    return [{
        "id": r["id"], "kind": r["kind"], "channel": r["channel"], "recipient": r["recipient"],
        "state": ("sent" if r["sent_at"] is not None else
                  "failed" if r["failed_at"] is not None else "pending"),
        "created_at": r["created_at"].isoformat(), "attempts": r["attempts"],
        "next_attempt_at": None if r["sent_at"] or r["failed_at"]
        else r["next_attempt_at"].isoformat(),
        "last_error": r["last_error"]} for r in rows]


async def prune_sent(conn: asyncpg.Connection, older_than: float, batch: int = 1000) -> int:
    """Delete at most ``batch`` messages sent more than ``older_than`` seconds ago."""
    result = await conn.execute(
        "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE sent_at"
        " < now() - make_interval(secs => $1::float8) LIMIT $2)", float(older_than), batch)
    return int(result.split()[-1])
