"""Notifications from outside YooKassa's networks: counted, sampled, rate-limited, never stored whole.

Each request is one statement: an INSERT ... SELECT ... ON CONFLICT DO UPDATE (SQLite and
PostgreSQL both have it) that adds one to its source network's row of the current window, or
starts that row, and returns the row's network and new count. Concurrent requests from one source
serialize on that one row; none of them fails on the unique constraint and none is lost.

Growth per window is bounded whatever the number of sources: only the first
YOOKASSA_UNTRUSTED_TRACKED_NETWORKS networks of a window get rows of their own; every later one is
counted in the window's one OTHER_NETWORKS row, which has the same rate limit, so past it every
new source is answered 429 (YooKassa's own notifications come from trusted networks: nothing
legitimate is refused). On PostgreSQL, networks arriving at the same instant may each see the
count just below the cap, so it can be passed by as many requests as run concurrently (bounded by
the connections).

The first notification of a tracked network also writes a sample of its body (a second
statement, once per network and window) to a table of its own: the tally's row, rewritten on
every request and by every 429, holds only counters.
"""

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import connections

from config.client_addresses import address_group, parse_ip
from webhooks.models import UntrustedNotificationSample, UntrustedNotificationTally

# Of an untrusted body, this much is kept (once per source network and window): enough to see
# what was tried, too little for strangers to fill the inbox.
UNTRUSTED_SAMPLE_BYTES = 1024
UNKNOWN_SOURCE = "unknown"
# The row of a window that counts every network past the tracked ones.
OTHER_NETWORKS = "other"


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
    network, received = _upsert(
        source_network=source_network(remote_addr),
        window_start=window_start,
        seen_at=now,
        body_bytes=len(body),
        limit=limit,
        tracked_networks=settings.YOOKASSA_UNTRUSTED_TRACKED_NETWORKS,
    )
    if received == 1 and network != OTHER_NETWORKS:
        _keep_sample(source_network=network, window_start=window_start, remote_addr=remote_addr, body=body)
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


def _keep_sample(*, source_network: str, window_start: datetime, remote_addr: str | None, body: bytes) -> None:
    ip = parse_ip(remote_addr)
    sample = UntrustedNotificationSample(
        source_network=source_network,
        window_start=window_start,
        # The address as it came (an IPv4-mapped one included), like the inbox's remote_addr.
        remote_addr=str(ipaddress.ip_address(remote_addr)) if ip is not None else None,
        # PostgreSQL's text cannot hold NUL: stored as U+FFFD, like bytes that are not UTF-8.
        body=body[:UNTRUSTED_SAMPLE_BYTES].decode("utf-8", "replace").replace("\x00", "\ufffd"),
    )
    UntrustedNotificationSample.objects.bulk_create([sample], ignore_conflicts=True)


def _upsert(
    *,
    source_network: str,
    window_start: datetime,
    seen_at: datetime,
    body_bytes: int,
    limit: int,
    tracked_networks: int,
) -> tuple[str, int]:
    model = UntrustedNotificationTally
    connection = connections[model.objects.db]
    values = {
        "window_start": window_start,
        "first_seen_at": seen_at,
        "last_seen_at": seen_at,
        "received": 1,
        "over_limit": 0,
        "bytes_received": body_bytes,
    }
    fields = [model._meta.get_field(name) for name in values]
    params = [field.get_db_prep_save(values[field.name], connection) for field in fields]
    q = connection.ops.quote_name
    table = q(model._meta.db_table)
    network, window = q("source_network"), q("window_start")
    received, over_limit, bytes_received = q("received"), q("over_limit"), q("bytes_received")
    window_param = model._meta.get_field("window_start").get_db_prep_save(window_start, connection)
    columns = [network, *(q(field.column) for field in fields)]
    # Each value cast to its column's type: in INSERT ... SELECT, PostgreSQL types the SELECT's
    # parameters on their own.
    casts = [f"CAST(%s AS {field.cast_db_type(connection)})" for field in fields]
    # Only quoted names of this model and its columns' types are formatted in; every value is a parameter.
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608
        f"SELECT CASE WHEN EXISTS (SELECT 1 FROM {table} WHERE {window} = %s AND {network} = %s) "
        f"OR (SELECT COUNT(*) FROM {table} WHERE {window} = %s AND {network} <> %s) < %s "
        f"THEN CAST(%s AS {model._meta.get_field('source_network').cast_db_type(connection)}) ELSE %s END, "
        f"{', '.join(casts)} "
        # SQLite needs a WHERE here to read the ON CONFLICT that follows as the upsert's.
        f"WHERE 1 = 1 "
        f"ON CONFLICT ({network}, {window}) DO UPDATE SET "
        f"{received} = {table}.{received} + 1, "
        f"{over_limit} = {table}.{over_limit} + CASE WHEN {table}.{received} >= %s THEN 1 ELSE 0 END, "
        f"{bytes_received} = {table}.{bytes_received} + excluded.{bytes_received}, "
        f"{q('last_seen_at')} = excluded.{q('last_seen_at')} "
        f"RETURNING {network}, {received}"
    )
    choose_network = [
        window_param,
        source_network,
        window_param,
        OTHER_NETWORKS,
        tracked_networks,
        source_network,
        OTHER_NETWORKS,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*choose_network, *params, limit])
        network_counted, count = cursor.fetchone()
        return network_counted, count
