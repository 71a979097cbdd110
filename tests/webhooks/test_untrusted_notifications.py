"""Notifications from outside YooKassa's networks: counted per source network and window, one
write each, 429 past the rate limit; the inbox grows by a bounded amount per window whatever the
number of sources."""

import ipaddress
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, connections
from django.db.models import Sum
from django.db.models.functions import Length
from django.test import Client
from django.test.utils import CaptureQueriesContext

from billing import clock
from webhooks.models import UntrustedNotificationSample, UntrustedNotificationTally, YooKassaNotification
from webhooks.untrusted import source_network

WEBHOOK_URL = "/webhooks/yookassa/"
# The start of a rate-limit window (a whole hour): a test that travels here stays in one window.
WINDOW_START = datetime(2030, 1, 1, 10, 0, tzinfo=UTC)


def _post(body: bytes, remote_addr: str):
    return Client().post(WEBHOOK_URL, data=body, content_type="application/json", REMOTE_ADDR=remote_addr)


def _inbox_footprint() -> dict:
    """Rows of the inbox tables and the bytes of text they hold."""
    return {
        "notifications": YooKassaNotification.objects.count(),
        "tallies": UntrustedNotificationTally.objects.count(),
        "samples": UntrustedNotificationSample.objects.count(),
        "stored_bytes": (
            (YooKassaNotification.objects.aggregate(n=Sum(Length("raw_body")))["n"] or 0)
            + (UntrustedNotificationSample.objects.aggregate(n=Sum(Length("body")))["n"] or 0)
        ),
    }


def _table_bytes(*models) -> int | None:
    """PostgreSQL's own measure of the tables, indexes and TOAST included; None on SQLite."""
    if connection.vendor != "postgresql":
        return None
    models = models or (YooKassaNotification, UntrustedNotificationTally, UntrustedNotificationSample)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT " + " + ".join(["pg_total_relation_size(%s)"] * len(models)),
            [model._meta.db_table for model in models],
        )
        return cursor.fetchone()[0]


SOURCES = {
    "one-address": lambda i: "203.0.113.7",
    "rotating-through-one-ipv6-64": lambda i: str(ipaddress.IPv6Address("2001:db8:1:2::") + i * 7919 + 1),
    "a-thousand-ipv4-addresses": lambda i: str(ipaddress.IPv4Address("198.18.0.0") + i),
    "a-thousand-ipv6-64s-of-one-48": lambda i: str(ipaddress.IPv6Address("2001:db8:abcd::1") + (i << 64)),
}
TRACKED_NETWORKS = 100
# Whatever the number of sources: a row per tracked network and one for all the others; a sample
# of at most 1 KiB per tracked network.
MAX_TALLY_ROWS = TRACKED_NETWORKS + 1
MAX_SAMPLE_BYTES = TRACKED_NETWORKS * 1024
# PostgreSQL's measure of the three tables' growth (rows, row versions, indexes): 132 MiB before
# the inbox stopped storing untrusted bodies, 0.5 MiB for 500 /64s before the tracked networks.
MAX_TABLE_BYTES = 384 * 1024


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("source", SOURCES.values(), ids=SOURCES.keys())
def test_a_thousand_untrusted_96_kib_notifications_grow_the_inbox_by_a_bounded_amount(settings, source):
    # given the attack of the issue: 1,000 untrusted POSTs of 96 KiB
    settings.YOOKASSA_UNTRUSTED_RATE_LIMIT = 30
    settings.YOOKASSA_UNTRUSTED_RATE_WINDOW_SECONDS = 3600
    settings.YOOKASSA_UNTRUSTED_TRACKED_NETWORKS = TRACKED_NETWORKS
    body = b'{"type": "notification", "padding": "' + b"x" * (96 * 1024) + b'"}'
    before, table_bytes_before = _inbox_footprint(), _table_bytes()

    # when they are posted within one window
    with clock.moved_to(WINDOW_START):
        statuses = [_post(body, source(i)).status_code for i in range(1000)]

    # then nothing enters the inbox, and the tallies grow by a bound that does not depend on the sources
    after = _inbox_footprint()
    assert after["notifications"] == before["notifications"]
    assert after["tallies"] - before["tallies"] <= MAX_TALLY_ROWS
    assert after["samples"] - before["samples"] <= TRACKED_NETWORKS
    assert after["stored_bytes"] - before["stored_bytes"] <= MAX_SAMPLE_BYTES
    assert sum(UntrustedNotificationTally.objects.values_list("received", flat=True)) == 1000
    if len({source_network(source(i)) for i in range(1000)}) == 1000:
        # the first 100 networks answered 403 once each; the others share the "other" row's limit
        assert statuses == [403] * (TRACKED_NETWORKS + 30) + [429] * (1000 - TRACKED_NETWORKS - 30)
        assert UntrustedNotificationTally.objects.get(source_network="other").over_limit == 870
        assert after["tallies"] - before["tallies"] == MAX_TALLY_ROWS
    else:
        assert statuses == [403] * 30 + [429] * 970
        assert UntrustedNotificationTally.objects.get().over_limit == 970
    table_bytes_after = _table_bytes()
    if table_bytes_after is not None:
        assert table_bytes_after - table_bytes_before <= MAX_TABLE_BYTES


@pytest.mark.django_db
def test_networks_past_the_tracked_ones_share_one_row_without_samples_and_its_limit(settings):
    # given room for two networks of their own, and a limit of 3
    settings.YOOKASSA_UNTRUSTED_RATE_LIMIT = 3
    settings.YOOKASSA_UNTRUSTED_TRACKED_NETWORKS = 2

    # when five networks post (the first one again at the end)
    with clock.moved_to(WINDOW_START):
        statuses = [_post(f'{{"n": {n}}}'.encode(), f"203.0.113.{n}").status_code for n in (1, 2, 3, 4, 5, 6, 1)]

    # then the first two keep their own rows and samples; the others are counted together, and
    # past the limit are refused together
    assert statuses == [403, 403, 403, 403, 403, 429, 403]
    assert dict(UntrustedNotificationTally.objects.values_list("source_network", "received")) == {
        "203.0.113.1/32": 2,
        "203.0.113.2/32": 1,
        "other": 4,
    }
    assert UntrustedNotificationTally.objects.get(source_network="other").over_limit == 1
    assert sorted(UntrustedNotificationSample.objects.values_list("source_network", "body")) == [
        ("203.0.113.1/32", '{"n": 1}'),
        ("203.0.113.2/32", '{"n": 2}'),
    ]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_over_limit_notifications_rewrite_only_the_counters(settings):
    # given one source past its limit, its 1 KiB sample kept
    settings.YOOKASSA_UNTRUSTED_RATE_LIMIT = 1
    settings.YOOKASSA_UNTRUSTED_RATE_WINDOW_SECONDS = 3600
    body = b'{"padding": "' + b"x" * 4096 + b'"}'
    with clock.moved_to(WINDOW_START):
        _post(body, "203.0.113.7")
        before = _table_bytes(UntrustedNotificationTally, UntrustedNotificationSample)

        # when 1,000 more come, each answered 429
        statuses = {_post(body, "203.0.113.7").status_code for _ in range(1000)}

    # then each rewrote only the small counters' row (every rewrite is a new row version, and as
    # much WAL): the row holds no sample, and the tables grow by at most 1,000 such versions (when
    # an open snapshot keeps PostgreSQL from pruning them; a few pages when it can): about 1.2 MB
    # with the sample in the row
    grown = _table_bytes(UntrustedNotificationTally, UntrustedNotificationSample) - before
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_column_size(tally.*) FROM webhooks_untrustednotificationtally AS tally")
        [(row_bytes,)] = cursor.fetchall()
    assert statuses == {429}
    assert row_bytes <= 128
    assert grown <= 256 * 1024
    assert len(UntrustedNotificationSample.objects.get().body) == 1024


@pytest.mark.django_db
def test_past_the_limit_the_answer_is_429_and_only_the_count_grows(settings):
    settings.YOOKASSA_UNTRUSTED_RATE_LIMIT = 3
    settings.YOOKASSA_UNTRUSTED_RATE_WINDOW_SECONDS = 60
    bodies = [f'{{"attempt": {n}}}'.encode() for n in range(5)]

    with clock.moved_to(WINDOW_START + timedelta(seconds=15)):
        responses = [_post(body, "203.0.113.7") for body in bodies]

    assert [response.status_code for response in responses] == [403, 403, 403, 429, 429]
    assert [response.get("Retry-After") for response in responses[3:]] == ["45", "45"]
    assert not YooKassaNotification.objects.exists()
    tally = UntrustedNotificationTally.objects.get()
    assert tally.source_network == "203.0.113.7/32"
    assert tally.window_start == WINDOW_START
    assert tally.received == 5
    assert tally.over_limit == 2
    assert tally.bytes_received == sum(len(body) for body in bodies)
    assert tally.sample_body == bodies[0].decode()
    assert tally.sample_remote_addr == "203.0.113.7"
    assert tally.first_seen_at < tally.last_seen_at


@pytest.mark.django_db
def test_the_limit_counts_ipv6_addresses_by_their_64_and_ipv4_addresses_one_by_one(settings):
    settings.YOOKASSA_UNTRUSTED_RATE_LIMIT = 2

    with clock.moved_to(WINDOW_START):
        same_64 = [_post(b"{}", f"2001:db8:0:1::{n:x}").status_code for n in (1, 0xBEEF, 0xFFFF)]
        other_64 = _post(b"{}", "2001:db8:0:2::1").status_code
        ipv4 = [_post(b"{}", f"203.0.113.{n}").status_code for n in (1, 2, 3)]

    assert same_64 == [403, 403, 429]
    assert other_64 == 403
    assert ipv4 == [403, 403, 403]
    assert dict(UntrustedNotificationTally.objects.values_list("source_network", "received")) == {
        "2001:db8:0:1::/64": 3,
        "2001:db8:0:2::/64": 1,
        "203.0.113.1/32": 1,
        "203.0.113.2/32": 1,
        "203.0.113.3/32": 1,
    }


@pytest.mark.django_db
def test_a_new_window_starts_a_new_count(settings):
    settings.YOOKASSA_UNTRUSTED_RATE_LIMIT = 1
    settings.YOOKASSA_UNTRUSTED_RATE_WINDOW_SECONDS = 60

    with clock.moved_to(WINDOW_START):
        first_window = [_post(b"{}", "203.0.113.7").status_code for _ in range(2)]
    with clock.moved_to(WINDOW_START + timedelta(seconds=60)):
        next_window = [_post(b"{}", "203.0.113.7").status_code for _ in range(2)]

    assert first_window == [403, 429]
    assert next_window == [403, 429]
    windows = UntrustedNotificationTally.objects.order_by("window_start").values_list("window_start", "received")
    assert list(windows) == [(WINDOW_START, 2), (WINDOW_START + timedelta(seconds=60), 2)]


@pytest.mark.django_db
@pytest.mark.parametrize("earlier_posts", [1, 40], ids=["second", "past-the-limit"])
def test_an_untrusted_notification_is_written_with_one_statement(settings, earlier_posts):
    settings.YOOKASSA_UNTRUSTED_RATE_LIMIT = 30
    with clock.moved_to(WINDOW_START):
        for _ in range(earlier_posts):
            _post(b"{}", "203.0.113.7")

        with CaptureQueriesContext(connection) as queries:
            response = _post(b'{"type": "notification"}', "203.0.113.7")

    assert response.status_code == (429 if earlier_posts >= 30 else 403)
    statements = [query["sql"] for query in queries.captured_queries]
    assert len(statements) == 1
    assert statements[0].startswith(f"INSERT INTO {connection.ops.quote_name('webhooks_untrustednotificationtally')}")
    assert "ON CONFLICT" in statements[0]


@pytest.mark.django_db
def test_the_first_untrusted_notification_of_a_network_also_writes_its_sample_once(settings):
    with clock.moved_to(WINDOW_START), CaptureQueriesContext(connection) as queries:
        response = _post(b'{"type": "notification"}', "203.0.113.7")

    assert response.status_code == 403
    statements = [query["sql"] for query in queries.captured_queries]
    assert len(statements) == 2
    assert statements[0].startswith(f"INSERT INTO {connection.ops.quote_name('webhooks_untrustednotificationtally')}")
    # an INSERT that ignores a conflict (SQLite spells it INSERT OR IGNORE)
    assert statements[1].startswith("INSERT")
    assert connection.ops.quote_name("webhooks_untrustednotificationsample") in statements[1]
    assert "ON CONFLICT DO NOTHING" in statements[1] or "OR IGNORE" in statements[1]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_untrusted_notifications_from_one_source_are_all_counted_in_one_row(settings):
    settings.YOOKASSA_UNTRUSTED_RATE_LIMIT = 50
    settings.YOOKASSA_UNTRUSTED_RATE_WINDOW_SECONDS = 3600
    start = threading.Barrier(6)
    statuses: list[int] = []

    def post_many() -> None:
        try:
            start.wait()
            # Each thread on the window's clock: a moved clock stays in the context that moved it.
            with clock.moved_to(WINDOW_START):
                statuses.extend(_post(b"{}", "203.0.113.7").status_code for _ in range(40))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=post_many) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [403] * 50 + [429] * 190
    tally = UntrustedNotificationTally.objects.get()
    assert tally.received == 240
    assert tally.over_limit == 190
