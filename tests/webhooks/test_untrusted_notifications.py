"""Notifications from outside YooKassa's networks: counted per source network and window, one
write each, 429 past the rate limit; the inbox does not grow with them."""

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
from webhooks.models import UntrustedNotificationTally, YooKassaNotification

WEBHOOK_URL = "/webhooks/yookassa/"
# The start of a rate-limit window (a whole hour): a test that travels here stays in one window.
WINDOW_START = datetime(2030, 1, 1, 10, 0, tzinfo=UTC)


def _post(body: bytes, remote_addr: str):
    return Client().post(WEBHOOK_URL, data=body, content_type="application/json", REMOTE_ADDR=remote_addr)


def _inbox_footprint() -> dict:
    """Rows of both inbox tables and the bytes of text they hold."""
    return {
        "notifications": YooKassaNotification.objects.count(),
        "tallies": UntrustedNotificationTally.objects.count(),
        "stored_bytes": (
            (YooKassaNotification.objects.aggregate(n=Sum(Length("raw_body")))["n"] or 0)
            + (UntrustedNotificationTally.objects.aggregate(n=Sum(Length("sample_body")))["n"] or 0)
        ),
    }


def _table_bytes() -> int | None:
    """PostgreSQL's own measure of both tables, indexes and TOAST included; None on SQLite."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_total_relation_size(%s) + pg_total_relation_size(%s)",
            [YooKassaNotification._meta.db_table, UntrustedNotificationTally._meta.db_table],
        )
        return cursor.fetchone()[0]


SOURCES = {
    "one-address": lambda i: "203.0.113.7",
    "rotating-through-one-ipv6-64": lambda i: str(ipaddress.IPv6Address("2001:db8:1:2::") + i * 7919 + 1),
    "a-thousand-ipv4-addresses": lambda i: str(ipaddress.IPv4Address("198.18.0.0") + i),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("source", SOURCES.values(), ids=SOURCES.keys())
def test_a_thousand_untrusted_96_kib_notifications_grow_the_inbox_by_a_bounded_amount(settings, source):
    # given the attack of the issue: 1,000 untrusted POSTs of 96 KiB
    settings.YOOKASSA_UNTRUSTED_RATE_LIMIT = 30
    settings.YOOKASSA_UNTRUSTED_RATE_WINDOW_SECONDS = 3600
    body = b'{"type": "notification", "padding": "' + b"x" * (96 * 1024) + b'"}'
    before, table_bytes_before = _inbox_footprint(), _table_bytes()

    # when they are posted within one window
    with clock.travel_to(WINDOW_START):
        statuses = [_post(body, source(i)).status_code for i in range(1000)]

    # then nothing enters the inbox; each source network has one row with at most 1 KiB of body
    after = _inbox_footprint()
    networks = len({source(i) for i in range(1000)}) if source is SOURCES["a-thousand-ipv4-addresses"] else 1
    assert after["notifications"] == before["notifications"]
    assert after["tallies"] - before["tallies"] == networks
    assert after["stored_bytes"] - before["stored_bytes"] == networks * 1024
    assert sum(UntrustedNotificationTally.objects.values_list("received", flat=True)) == 1000
    assert set(statuses) <= {403, 429}
    if networks == 1:
        assert statuses == [403] * 30 + [429] * 970
        assert UntrustedNotificationTally.objects.get().over_limit == 970
    table_bytes_after = _table_bytes()
    if table_bytes_after is not None:
        # 132 MiB before the fix; now a row (and a few row versions) per source network.
        assert table_bytes_after - table_bytes_before <= max(512 * 1024, networks * 4 * 1024)


@pytest.mark.django_db
def test_past_the_limit_the_answer_is_429_and_only_the_count_grows(settings):
    settings.YOOKASSA_UNTRUSTED_RATE_LIMIT = 3
    settings.YOOKASSA_UNTRUSTED_RATE_WINDOW_SECONDS = 60
    bodies = [f'{{"attempt": {n}}}'.encode() for n in range(5)]

    with clock.travel_to(WINDOW_START + timedelta(seconds=15)):
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

    with clock.travel_to(WINDOW_START):
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

    with clock.travel_to(WINDOW_START):
        first_window = [_post(b"{}", "203.0.113.7").status_code for _ in range(2)]
    with clock.travel_to(WINDOW_START + timedelta(seconds=60)):
        next_window = [_post(b"{}", "203.0.113.7").status_code for _ in range(2)]

    assert first_window == [403, 429]
    assert next_window == [403, 429]
    windows = UntrustedNotificationTally.objects.order_by("window_start").values_list("window_start", "received")
    assert list(windows) == [(WINDOW_START, 2), (WINDOW_START + timedelta(seconds=60), 2)]


@pytest.mark.django_db
@pytest.mark.parametrize("earlier_posts", [0, 1, 40], ids=["first", "second", "past-the-limit"])
def test_an_untrusted_notification_is_written_with_one_statement(settings, earlier_posts):
    settings.YOOKASSA_UNTRUSTED_RATE_LIMIT = 30
    with clock.travel_to(WINDOW_START):
        for _ in range(earlier_posts):
            _post(b"{}", "203.0.113.7")

        with CaptureQueriesContext(connection) as queries:
            response = _post(b'{"type": "notification"}', "203.0.113.7")

    assert response.status_code == (429 if earlier_posts >= 30 else 403)
    statements = [query["sql"] for query in queries.captured_queries]
    assert len(statements) == 1
    assert statements[0].startswith("INSERT INTO")
    assert "ON CONFLICT" in statements[0]


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
            statuses.extend(_post(b"{}", "203.0.113.7").status_code for _ in range(40))
        finally:
            connections.close_all()

    with clock.travel_to(WINDOW_START):
        threads = [threading.Thread(target=post_many) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert sorted(statuses) == [403] * 50 + [429] * 190
    tally = UntrustedNotificationTally.objects.get()
    assert tally.received == 240
    assert tally.over_limit == 190
