"""The one reading of X-Forwarded-For that the webhook and the admin login share."""

import pytest

from config.client_addresses import address_group, address_in, hops_to_the_client, parse_ip

PROXIES = ["10.0.0.0/24"]
PROXY = "10.0.0.5"
CLIENT = "203.0.113.66"


@pytest.mark.parametrize(
    ("remote_addr", "forwarded_for", "hops"),
    [
        (CLIENT, "192.0.2.1", [CLIENT]),  # not from a proxy: the header is the client's own words
        (PROXY, None, [PROXY]),
        (PROXY, "", [PROXY]),
        (PROXY, CLIENT, [PROXY, CLIENT]),
        (PROXY, f"192.0.2.1, {CLIENT}", [PROXY, CLIENT]),  # left of the proxy's hop: the client's writing
        (PROXY, f"{CLIENT}, 10.0.0.9", [PROXY, "10.0.0.9", CLIENT]),  # a second proxy of ours
        (PROXY, f"{CLIENT}, , 10.0.0.9", [PROXY, "10.0.0.9", CLIENT]),  # empty hops are skipped
        (PROXY, f"{CLIENT}, unknown", [PROXY, "unknown"]),  # an unreadable hop ends the walk
        (PROXY, f"{CLIENT}, unknown, 10.0.0.9", [PROXY, "10.0.0.9", "unknown"]),
        (None, CLIENT, []),
    ],
)
def test_hops_to_the_client(remote_addr, forwarded_for, hops):
    assert hops_to_the_client(remote_addr=remote_addr, forwarded_for=forwarded_for, proxies=PROXIES) == hops


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ("2001:db8::1", "2001:db8::1"),
        ("203.0.113.9:443", None),
        ("fe80::1%eth0", "fe80::1%eth0"),
        ("", None),
        (None, None),
    ],
)
def test_parse_ip(address, expected):
    ip = parse_ip(address)

    assert (str(ip) if ip is not None else None) == expected


@pytest.mark.parametrize(
    ("address", "group"),
    [
        ("203.0.113.9", "203.0.113.9/32"),
        ("::ffff:203.0.113.9", "203.0.113.9/32"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("not-an-address", None),
    ],
)
def test_address_group(address, group):
    network = address_group(address)

    assert (str(network) if network is not None else None) == group


def test_address_in():
    assert address_in("10.0.0.7", PROXIES)
    assert address_in("::ffff:10.0.0.7", PROXIES)
    assert not address_in("10.0.1.7", PROXIES)
    assert not address_in("2001:db8::1", PROXIES)
    assert not address_in("unknown", PROXIES)
    assert not address_in(None, PROXIES)
