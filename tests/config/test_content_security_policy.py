"""The Content-Security-Policy of the pages the service renders: the admin and the example page.

The policy allows no inline script or style without the response's nonce, so every page is read
here for what a browser would refuse under it: an inline <script> or <style> without that nonce,
an event-handler or style attribute, a javascript: link.
"""

from html.parser import HTMLParser

import pytest
from django.contrib import admin
from django.urls import NoReverseMatch, reverse

from config.examples import CHECKOUT_PAGE

pytestmark = pytest.mark.django_db

# Script types a browser runs; anything else (application/json, ...) is data, which CSP leaves alone.
_EXECUTABLE_SCRIPT_TYPES = {"", "text/javascript", "module", "application/javascript"}


class _InlineCode(HTMLParser):
    """What in a page runs or styles inline: (what, where) for each, and the nonces it carries."""

    def __init__(self) -> None:
        super().__init__()
        self.inline_without_nonce: list[str] = []
        self.forbidden_attributes: list[str] = []
        self.nonces: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        for name, value in attrs:
            if name.startswith("on") or name == "style" or (value or "").strip().lower().startswith("javascript:"):
                self.forbidden_attributes.append(f"<{tag} {name}={value!r}>")
        is_inline_script = (
            tag == "script" and "src" not in attributes and (attributes.get("type") or "") in _EXECUTABLE_SCRIPT_TYPES
        )
        if is_inline_script or tag == "style":
            if attributes.get("nonce"):
                self.nonces.add(attributes["nonce"])
            else:
                self.inline_without_nonce.append(tag)


def inline_code(html: str) -> _InlineCode:
    parser = _InlineCode()
    parser.feed(html)
    return parser


def policy(response) -> dict[str, set[str]]:
    """The response's Content-Security-Policy as directive -> sources."""
    directives = [directive.split() for directive in response["Content-Security-Policy"].split(";")]
    return {name: set(sources) for name, *sources in directives}


def assert_strict(directives: dict[str, set[str]], *, nonce: str | None = None) -> None:
    with_nonce = {"'self'", f"'nonce-{nonce}'"} if nonce else {"'self'"}
    assert directives["default-src"] == {"'none'"}
    assert directives["script-src"] == with_nonce
    assert directives["style-src"] == with_nonce
    assert directives["connect-src"] == {"'self'"}
    assert directives["object-src"] == directives["base-uri"] == directives["frame-ancestors"] == {"'none'"}
    assert directives["form-action"] == {"'self'"}


def admin_pages() -> list[str]:
    """The admin's index, and for every registered model its list, its add page and the change
    page of its first row."""
    pages = [reverse("admin:index"), reverse("admin:password_change")]
    for model in admin.site._registry:
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        first = model._default_manager.order_by("pk").first()
        for view, args in (("changelist", []), ("add", []), ("change", [first.pk] if first else None)):
            if args is None:
                continue
            try:
                pages.append(reverse(f"{prefix}_{view}", args=args))
            except NoReverseMatch:
                continue
    return pages


def test_the_admin_login_page_has_the_strict_policy_and_nothing_inline(client):
    response = client.get(reverse("admin:login"))

    assert response.status_code == 200
    assert_strict(policy(response))
    found = inline_code(response.content.decode())
    assert found.inline_without_nonce == []
    assert found.forbidden_attributes == []


def test_every_admin_list_add_and_change_page_has_the_strict_policy_and_nothing_inline(admin_client, active):
    # Given a paid subscription: rows in the lists, and a change page for payments, cards, events...
    pages = admin_pages()

    served = {}
    for page in pages:
        response = admin_client.get(page)
        if response.status_code == 200:
            served[page] = response

    # Read-only models refuse their add page (403); every list and every change page is served.
    assert {page for page in pages if not page.endswith("/add/")} <= served.keys()
    assert sum(page.endswith("/change/") for page in served) >= 6
    for page, response in served.items():
        assert_strict(policy(response))
        found = inline_code(response.content.decode())
        assert found.inline_without_nonce == [], page
        assert found.forbidden_attributes == [], page


@pytest.mark.urls("tests.config.example_urls")
def test_the_example_page_runs_its_inline_script_and_style_by_the_responses_nonce_only(client):
    response = client.get("/examples/checkout/")

    found = inline_code(response.content.decode())

    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    [nonce] = found.nonces
    assert found.inline_without_nonce == []
    assert found.forbidden_attributes == []
    # connect-src 'self' covers its fetch("/graphql/") and its websocket to the same host.
    assert_strict(policy(response), nonce=nonce)


@pytest.mark.urls("tests.config.example_urls")
def test_the_example_page_is_the_file_with_only_its_nonce_filled_in_and_a_new_nonce_each_time(client):
    first = client.get("/examples/checkout/").content.decode()
    second = client.get("/examples/checkout/").content.decode()

    [first_nonce] = inline_code(first).nonces
    [second_nonce] = inline_code(second).nonces

    assert first_nonce != second_nonce
    # Nothing else of the page is template: its script comes through byte for byte.
    assert first == CHECKOUT_PAGE.read_text(encoding="utf-8").replace("{{ request.csp_nonce }}", first_nonce)


@pytest.mark.urls("tests.config.example_urls")
def test_the_example_page_is_only_read(client):
    response = client.post("/examples/checkout/")

    assert response.status_code == 405


def test_graphql_answers_carry_the_policy_when_graphiql_is_not_served(client):
    response = client.post("/graphql/", {"query": "{ plans { id } }"}, content_type="application/json")

    assert response.status_code == 200
    assert_strict(policy(response))
