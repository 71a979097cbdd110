"""Notifications from outside YooKassa's networks: counted, sampled, rate-limited, never stored whole.

Each request is one statement: an INSERT ... ON CONFLICT DO UPDATE (SQLite and PostgreSQL both
have it) that adds one to its source network's row of the current window, or starts that row with
a sample of the body, and returns the new count. Concurrent requests from one source serialize on
that one row; none of them fails on the unique constraint and none is lost.
"""

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import connections

from config.client_addresses import address_group, parse_ip
from webhooks.models import UntrustedNotificationTally

# Of an untrusted body, this much is kept (once per source network and window): enough to see
# what was tried, too little for strangers to fill the inbox.
UNTRUSTED_SAMPLE_BYTES = 1024
UNKNOWN_SOURCE = "unknown"


@dataclass(frozen=True)
class Tally:
    source_network: str
    received: int
    over_limit: bool
    retry_after: int


def untrusted_notification_count(*, remote_addr: str | None, body: bytes, now: datetime) -> Tally:
    """Count one notification from an untrusted address; past the limit it is only counted."""
    window = settings.YOOKASSA_UNTRUSTED_RATE_WINDOW_SECONDS
    limit = settings.YOOKASSA_UNTRUSTED_RATE_LIMIT
    epoch = int(now.timestamp())
    window_start = datetime.fromtimestamp(epoch - epoch % window, tz=UTC)
    network = source_network(remote_addr)
    ip = parse_ip(remote_addr)
    received = _upsert(
        source_network=network,
        window_start=window_start,
        seen_at=now,
        body_bytes=len(body),
        # The address as it came (an IPv4-mapped one included), like the inbox's remote_addr.
        sample_remote_addr=str(ipaddress.ip_address(remote_addr)) if ip is not None else None,
        # PostgreSQL's text cannot hold NUL: stored as U+FFFD, like bytes that are not UTF-8.
        sample_body=body[:UNTRUSTED_SAMPLE_BYTES].decode("utf-8", "replace").replace("\x00", "\ufffd"),
        limit=limit,
    )
    return Tally(
        source_network=network,
        received=received,
        over_limit=received > limit,
        retry_after=max(1, window - epoch % window),
    )


def source_network(remote_addr: str | None) -> str:
    """What the rate limit counts by: an IPv4 address, or the /64 of an IPv6 one."""
    network = address_group(remote_addr)
    return str(network) if network is not None else UNKNOWN_SOURCE


def _upsert(
    *,
    source_network: str,
    window_start: datetime,
    seen_at: datetime,
    body_bytes: int,
    sample_remote_addr: str | None,
    sample_body: str,
    limit: int,
) -> int:
    model = UntrustedNotificationTally
    connection = connections[model.objects.db]
    values = {
        "source_network": source_network,
        "window_start": window_start,
        "first_seen_at": seen_at,
        "last_seen_at": seen_at,
        "received": 1,
        "over_limit": 0,
        "bytes_received": body_bytes,
        "sample_remote_addr": sample_remote_addr,
        "sample_body": sample_body,
    }
    fields = [model._meta.get_field(name) for name in values]
    params = [field.get_db_prep_save(values[field.name], connection) for field in fields]
    q = connection.ops.quote_name
    table = q(model._meta.db_table)
    received, over_limit, bytes_received = q("received"), q("over_limit"), q("bytes_received")
    # Only quoted names of this model are formatted in; every value is a parameter.
    sql = (
        f"INSERT INTO {table} ({', '.join(q(field.column) for field in fields)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(fields))}) "
        f"ON CONFLICT ({q('source_network')}, {q('window_start')}) DO UPDATE SET "
        f"{received} = {table}.{received} + 1, "
        f"{over_limit} = {table}.{over_limit} + CASE WHEN {table}.{received} >= %s THEN 1 ELSE 0 END, "
        f"{bytes_received} = {table}.{bytes_received} + excluded.{bytes_received}, "
        f"{q('last_seen_at')} = excluded.{q('last_seen_at')} "
        f"RETURNING {received}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, limit])
        return cursor.fetchone()[0]
