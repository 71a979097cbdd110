"""Row locks, in the one order every service takes them: payment, then refund, then subscription,
then the viewer's entitlements.

Taking them in a fixed order is what keeps two services that touch the same rows from
deadlocking. The entitlements row is always last: `entitlements_sync` takes it from
`event_record`, after the change it records is saved, and nothing is locked after it.
`of=("self",)` locks only the row asked for, not the rows joined to it.
"""

import uuid

from django.db.models import QuerySet

from billing.errors import UnknownProviderPayment, UnknownProviderRefund
from billing.gateway.interface import ProviderPayment, ProviderRefund
from billing.models import Payment, Refund, Subscription, ViewerEntitlements


def payments_for_update() -> QuerySet[Payment]:
    return Payment.objects.select_for_update(of=("self",)).select_related("subscription__plan", "payment_method")


def refunds_for_update() -> QuerySet[Refund]:
    return Refund.objects.select_for_update(of=("self",)).select_related("payment")


def subscriptions_for_update() -> QuerySet[Subscription]:
    return Subscription.objects.select_for_update(of=("self",)).select_related("plan")


def payment_for_provider_object(provider_payment: ProviderPayment) -> Payment:
    """Our payment for YooKassa's payment, locked; UnknownProviderPayment when it is not one of ours.

    The id in the object's metadata (it came from the API) names the row, also
    when the process that created it died before it recorded YooKassa's id. The row is locked by
    its key alone, so a concurrent request that records the id first cannot make it vanish from
    the query when the lock is granted (PostgreSQL re-checks the WHERE of a locking query against
    the row as committed by the holder of the lock, and would skip a row whose id changed).
    """
    payment = _provider_row(payments_for_update(), "provider_payment_id", provider_payment, "payment_id")
    if payment is None:
        raise UnknownProviderPayment(f"YooKassa payment {provider_payment.id} is not one of ours.")
    return payment


def refund_for_provider_object(provider_refund: ProviderRefund) -> Refund:
    """Our refund for YooKassa's refund, locked after its payment (the lock order);
    UnknownProviderRefund when it is not one of ours. Found as `payment_for_provider_object` finds
    a payment; the first look takes no lock (the payment's lock comes first), so the refund is
    locked by key alone and checked again once both are locked."""
    found = _provider_row(Refund.objects.all(), "provider_refund_id", provider_refund, "refund_id")
    refund = None
    if found is not None:
        payment = payments_for_update().get(pk=found.payment_id)
        refund = refunds_for_update().get(pk=found.pk)
        refund.payment = payment
    if refund is None or refund.provider_refund_id not in (None, provider_refund.id):
        raise UnknownProviderRefund(f"YooKassa refund {provider_refund.id} is not one of ours.")
    return refund


def _provider_row(queryset: QuerySet, provider_id_field: str, provider_object, metadata_key: str):
    """The row the object's metadata names, else the one carrying YooKassa's id; never a row that
    carries another of YooKassa's ids."""
    provider_id = provider_object.id
    try:
        pk = uuid.UUID(provider_object.metadata.get(metadata_key, ""))
    except ValueError:
        pk = None
    row = queryset.filter(pk=pk).first() if pk else None
    if row is None:
        row = queryset.filter(**{provider_id_field: provider_id}).first()
    if row is None or getattr(row, provider_id_field) not in (None, provider_id):
        return None
    return row


def viewer_entitlements_for_update() -> QuerySet[ViewerEntitlements]:
    return ViewerEntitlements.objects.select_for_update()
