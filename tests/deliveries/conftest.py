import pytest

from deliveries import endpoints
from deliveries.models import Endpoint
from tests.deliveries.receiver import Receiver, new_secret, serve


@pytest.fixture(autouse=True)
def fast_retries(settings):
    """Retries within a fraction of a second, a lease a test can wait out."""
    settings.DELIVERY_RETRY_MIN_SECONDS = 0.01
    settings.DELIVERY_RETRY_MAX_SECONDS = 0.05
    settings.DELIVERY_CONNECT_TIMEOUT = 1.0
    settings.DELIVERY_READ_TIMEOUT = 2.0
    settings.DELIVERY_LEASE_SECONDS = 6.0
    endpoints._last_sync["at"] = float("-inf")
    yield
    endpoints._last_sync["at"] = float("-inf")


@pytest.fixture
def receiver():
    receiver = Receiver(secret=new_secret())
    server = serve(receiver)
    yield receiver
    if receiver.hold is not None:
        receiver.hold.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def endpoint(db, receiver) -> Endpoint:
    return Endpoint.objects.create(
        name="auth",
        url=receiver.url,
        secret=receiver.secret,
        event_types=["subscription.activated", "payment.succeeded", "refund.succeeded", "subscription.canceled"],
    )
