import pytest

from billing import services
from tests.helpers import pay_on_page, start_checkout


@pytest.fixture
def active(viewer, plan):
    """Basic (299.00 RUB a month), paid with a saved card."""
    payment = start_checkout(viewer, plan).payment
    pay_on_page(payment.confirmation_url, "5555555555554444")
    subscription = services.payment_refresh(provider_payment_id=payment.provider_payment_id).subscription
    subscription.refresh_from_db()
    return subscription
