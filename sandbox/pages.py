"""HTML of the payment page and the sandbox's index, from templates in sandbox/templates."""

from collections.abc import Iterable
from decimal import Decimal
from functools import cache
from html import escape
from pathlib import Path
from string import Template

from sandbox.cards import DEFAULT_CSC, TestCard, default_expiry
from sandbox.config import SandboxConfig

_TEMPLATES = Path(__file__).parent / "templates"


@cache
def _template(name: str) -> Template:
    return Template((_TEMPLATES / name).read_text(encoding="utf-8"))


def _render(name: str, *, title: str, **values: str) -> str:
    """Values are escaped, except the `*_html` ones that this module built itself."""
    safe = {key: value if key.endswith("_html") else escape(str(value)) for key, value in values.items()}
    body = _template(name).substitute(safe)
    return _template("base.html").substitute(title=escape(title), body_html=body)


def _amount(payment: dict) -> str:
    value = Decimal(payment["amount"]["value"])
    return f"{value:,.2f} {payment['amount']['currency']}".replace(",", "\u202f")


def checkout(payment: dict, config: SandboxConfig, *, error: str | None = None) -> str:
    return _render(
        "checkout.html",
        title=f"Payment to {config.shop_name}",
        shop=config.shop_name,
        amount=_amount(payment),
        description=payment.get("description", ""),
        payment_id=payment["id"],
        expiry=default_expiry(config.clock()),
        csc=DEFAULT_CSC,
        error_html=f'<p class="error" role="alert">{escape(error)}</p>' if error else "",
        return_html=_return_link(
            payment.get("confirmation", {}).get("return_url"), "Return to the shop without paying"
        ),
    )


def three_d_secure(payment: dict, config: SandboxConfig) -> str:
    return _render(
        "three_d_secure.html",
        title="3-D Secure",
        shop=config.shop_name,
        amount=_amount(payment),
        payment_id=payment["id"],
        last4=payment.get("payment_method", {}).get("card", {}).get("last4", ""),
    )


def result(payment: dict, return_url: str | None) -> str:
    if payment["status"] in ("succeeded", "waiting_for_capture"):
        heading, text = "Payment accepted", f"{_amount(payment)} paid."
    else:
        reason = payment.get("cancellation_details", {}).get("reason", "")
        heading, text = "Payment declined", f"The payment was canceled ({reason})."
    return _render(
        "message.html",
        title=heading,
        heading=heading,
        text=text,
        return_html=_return_link(return_url, "Return to the shop"),
    )


def message(heading: str, text: str) -> str:
    return _render("message.html", title=heading, heading=heading, text=text, return_html="")


def index(payments: list[dict], cards: Iterable[TestCard], config: SandboxConfig) -> str:
    rows = "".join(
        _row(_link(f"/checkout/{p['id']}", p["id"]), p["status"], _amount(p), p.get("description", ""))
        for p in payments
    )
    card_rows = "".join(
        _row(
            _Html(f"<code>{escape(card.number)}</code>"),
            card.card_type,
            "yes" if card.three_d_secure else "no",
            f"declined: {card.decline.reason} ({card.decline.party})" if card.decline else "succeeds",
        )
        for card in cards
    )
    return _render(
        "index.html",
        title="YooKassa sandbox",
        shop=config.shop_name,
        shop_id=config.shop_id,
        api_url=f"{config.public_url}/v3",
        notification_url=config.notification_url or "(not set)",
        payments_html=rows or '<tr><td colspan="4">No payments yet.</td></tr>',
        cards_html=card_rows,
    )


def auth_demo(received: list, fault: dict | None) -> str:
    rows = "".join(
        _row(
            f"{event.received_at:%Y-%m-%d %H:%M:%S}",
            event.type or "-",
            event.viewer_id or "-",
            event.version or "-",
            ("yes" + (" (duplicate)" if event.duplicate else "")) if event.verified else f"no: {event.error}",
            event.webhook_id,
        )
        for event in received
    )
    return _render(
        "auth_demo.html",
        title="Auth service (demo)",
        fault="none" if fault is None else f"{fault['effect']} ({fault['times'] or 'until cleared'})",
        rows_html=rows or '<tr><td colspan="6">Nothing received yet: pay for a plan.</td></tr>',
    )


def _return_link(url: str | None, label: str) -> str:
    return f'<p><a href="{escape(url)}">{escape(label)}</a></p>' if url else ""


class _Html(str):
    """Markup built here, inserted as it is."""


def _link(href: str, text: str) -> _Html:
    return _Html(f'<a href="{escape(href)}">{escape(text)}</a>')


def _row(*cells: str) -> str:
    return "<tr>" + "".join(f"<td>{cell if isinstance(cell, _Html) else escape(cell)}</td>" for cell in cells) + "</tr>"
