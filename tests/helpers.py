"""What a payer's browser does on the sandbox's payment page."""

import re
import time

import requests


def pay_on_page(confirmation_url: str, card_number: str, *, expiry: str = "12/30") -> requests.Response:
    """Open the page, submit the card form (and the 3-D Secure form when asked); return the last answer."""
    page = requests.get(confirmation_url, timeout=5)
    page.raise_for_status()
    assert 'name="card_number"' in page.text
    answer = requests.post(
        confirmation_url,
        data={"card_number": card_number, "expiry": expiry, "csc": "123"},
        allow_redirects=False,
        timeout=5,
    )
    three_ds = re.search(r'<form method="post" action="(/checkout/[^"]+/3ds)"', answer.text)
    if answer.status_code == 200 and three_ds:
        base = confirmation_url.split("/checkout/")[0]
        answer = requests.post(base + three_ds[1], data={"code": "123456"}, allow_redirects=False, timeout=5)
    return answer


def eventually(check, *, timeout: float = 5.0, interval: float = 0.01):
    """Wait until `check()` returns something truthy (and return it), or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {check}")
        time.sleep(interval)
