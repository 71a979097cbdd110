"""The Content-Security-Policy as a real browser applies it: headless Chromium (Debian's `chromium`)
driven by Playwright loads the admin and the example checkout page from the live server and
records every violation the policy reports. Skipped where Chromium is missing, except when
REQUIRE_BROWSER is set (CI installs Chromium and sets it, so a missing browser fails there).
"""

import os
import shutil

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from billing.models import Payment
from tests.helpers import make_token

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and os.environ.get("REQUIRE_BROWSER"):
    raise RuntimeError("REQUIRE_BROWSER is set but there is no chromium on this machine (apt-get install chromium).")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (apt-get install chromium)"),
    pytest.mark.django_db(transaction=True),
]

# Runs before any of the page's own scripts: every violation the browser reports lands here.
RECORD_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", event => window.cspViolations.push(
    `${event.effectiveDirective} refused ${event.blockedURI || "inline"} (${event.sourceFile}:${event.lineNumber})`));
"""


def violations(page) -> list[str]:
    return page.evaluate("window.cspViolations")


def session_cookie_of_an_operator(live_server) -> dict:
    operator = get_user_model().objects.create_superuser("operator", "operator@cinema.example", "not-a-real-password")
    client = Client()
    client.force_login(operator)
    return {"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}


def test_the_admin_runs_under_the_policy_without_a_single_violation(live_server, active):
    # Given an operator signed in and a paid subscription to look at (all set up before the browser
    # starts: Playwright's event loop would stop the ORM from running in this thread).
    cookie = session_cookie_of_an_operator(live_server)
    payment = Payment.objects.get(subscription=active)
    pages = [
        reverse("admin:index"),
        reverse("admin:billing_subscription_changelist"),
        reverse("admin:billing_subscription_change", args=[active.pk]),
        reverse("admin:billing_payment_changelist"),
        reverse("admin:billing_payment_change", args=[payment.pk]),
        reverse("admin:plans_plan_add"),
        reverse("admin:auth_user_add"),
    ]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context()
        context.add_init_script(RECORD_VIOLATIONS)
        context.add_cookies([cookie])
        page = context.new_page()
        seen = {}
        for path in pages:
            response = page.goto(live_server.url + path)
            # The admin's own scripts ran: the navigation sidebar's toggle is wired up by nav_sidebar.js.
            page.wait_for_load_state("load")
            seen[path] = (response.status, violations(page), page.evaluate("document.title"))
        # And the harness does catch a violation: an inline script without the nonce is refused.
        page.evaluate(
            """() => {
                const script = document.createElement("script");
                script.textContent = "window.ranInline = true;";
                document.head.append(script);
            }"""
        )
        page.wait_for_function("window.cspViolations.length > 0", timeout=5_000)
        caught = violations(page)
        ran_inline = page.evaluate("window.ranInline === true")
        browser.close()

    for path, (status, found, title) in seen.items():
        assert status == 200, path
        assert found == [], path
        assert "Log in" not in title, path
    assert ran_inline is False
    [violation] = caught
    assert violation.startswith("script-src-elem refused inline")


@pytest.mark.urls("tests.config.example_urls")
def test_the_example_page_runs_its_script_and_style_and_may_open_its_websocket(live_server, plans, viewer):
    token = make_token(viewer.id, viewer.email)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context()
        context.add_init_script(RECORD_VIOLATIONS)
        page = context.new_page()
        page.goto(live_server.url + "/examples/checkout/")
        page.evaluate("token => { localStorage.setItem('viewerToken', token); }", token)
        page.reload()

        # The nonce'd script ran and reached /graphql/ (connect-src 'self'): the plans are listed.
        page.wait_for_selector(".plan button", timeout=10_000)
        plan_count = page.locator(".plan").count()
        # The nonce'd style applies.
        border_radius = page.eval_on_selector(".plan", "plan => getComputedStyle(plan).borderTopLeftRadius")
        # The live status's websocket to the service's own origin is allowed (the live server here
        # speaks no websocket, so it fails to connect later; a refused one throws at once).
        websocket_refused = page.evaluate(
            """() => {
                try { new WebSocket(`ws://${location.host}/graphql/`, "graphql-transport-ws"); return false; }
                catch (error) { return error.name; }
            }"""
        )
        found = violations(page)
        browser.close()

    assert plan_count == len(plans)
    assert border_radius == "8px"
    assert websocket_refused is False
    assert found == []
