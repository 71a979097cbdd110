"""YooKassa's test cards and what each one does (yookassa-notes.md section 7).

Any future expiry date, any CVC and any 3-D Secure code are accepted, as in YooKassa's test shop.
"""

from dataclasses import dataclass
from datetime import datetime

# What the payment page assumes when a form leaves the security code out (any passes).
DEFAULT_CSC = "123"


@dataclass(frozen=True)
class Decline:
    party: str
    reason: str


@dataclass(frozen=True)
class TestCard:
    number: str
    card_type: str
    three_d_secure: bool = False
    decline: Decline | None = None

    @property
    def first6(self) -> str:
        return self.number[:6]

    @property
    def last4(self) -> str:
        return self.number[-4:]


def _declines(party: str, table: dict[str, tuple[str, str, str]]) -> list[TestCard]:
    cards = []
    for reason, numbers in table.items():
        for number, card_type in zip(numbers, ("MasterCard", "Visa", "Mir"), strict=True):
            # A 3-D Secure failure happens on the 3-D Secure page, so those cards show it.
            cards.append(
                TestCard(number, card_type, three_d_secure=reason == "3d_secure_failed", decline=Decline(party, reason))
            )
    return cards


_SUCCESS = [
    TestCard("5555555555554477", "MasterCard", three_d_secure=True),
    TestCard("4793128161644804", "Visa", three_d_secure=True),
    TestCard("2200000000000004", "Mir", three_d_secure=True),
    TestCard("5555555555554444", "MasterCard"),
    TestCard("4111111111111111", "Visa"),
    TestCard("2202474301322987", "Mir"),
    TestCard("6759649826438453", "MasterCard"),  # Maestro is reported as MasterCard
    TestCard("4175001000000017", "Visa"),  # Visa Electron
    TestCard("370000000000002", "AmericanExpress"),
    TestCard("3528000700000000", "JCB"),
    TestCard("36700102000000", "DinersClub"),
]

_PAYMENT_NETWORK_DECLINES = {
    "3d_secure_failed": ("5555555555554592", "4839665499603842", "2200000000000012"),
    "call_issuer": ("5555555555554535", "4926946416239025", "2200000000000020"),
    "card_expired": ("5555555555554543", "4141435412630840", "2200000000000038"),
    "fraud_suspected": ("5555555555554568", "4483274282299972", "2200000000000046"),
    "general_decline": ("5555555555554527", "4889971706588753", "2202202212312379"),
    "insufficient_funds": ("5555555555554600", "4562265587712390", "2200000000000053"),
    "invalid_card_number": ("5555555555554618", "4951017853630544", "2201382000000013"),
    "invalid_csc": ("5555555555554626", "4194180666146368", "2200770212727079"),
    "issuer_unavailable": ("5555555555554501", "4654130848359150", "2201382000000021"),
    "payment_method_limit_exceeded": ("5555555555554576", "4565231022577548", "2201382000000039"),
    "payment_method_restricted": ("5555555555554550", "4233961169071671", "2201382000000047"),
}

_YOO_MONEY_DECLINES = {
    "country_forbidden": ("5555555555554584", "4969751510013864", "2201382000000054"),
    "fraud_suspected": ("5555555555554634", "4119098878796485", "2201696981989955"),
}

TEST_CARDS: dict[str, TestCard] = {
    card.number: card
    for card in _SUCCESS
    + _declines("payment_network", _PAYMENT_NETWORK_DECLINES)
    + _declines("yoo_money", _YOO_MONEY_DECLINES)
}


def find_test_card(number: str) -> TestCard | None:
    return TEST_CARDS.get("".join(number.split()))


def default_expiry(now: datetime) -> str:
    """An expiry date well in the future, MM/YY: what the payment page assumes when a form has none."""
    return f"{now.month:02d}/{(now.year + 3) % 100:02d}"
