"""Mutations: validate input, call one billing service, map the result. No rules here."""

import strawberry
import strawberry_django
from strawberry import relay
from strawberry.types import Info

from billing import services
from billing.errors import InvalidInput
from graphql_api.billing_types import PaymentMethodType, PaymentType, RefundType, SubscriptionType
from graphql_api.errors import PayloadError, mutation_payload, node_uuid

CancelMode = strawberry.enum(services.CancelMode, name="CancelMode")


@strawberry.input
class SubscribeInput:
    plan_id: relay.GlobalID
    return_url: str = strawberry.field(description="Where YooKassa sends the viewer after paying.")
    idempotency_key: str | None = strawberry.field(
        default=None, description="Unique per request: a repeat with the same key returns the first result."
    )
    save_payment_method: bool = strawberry.field(default=True, description="Save the card for automatic renewal.")


@strawberry.type
class SubscribeError(PayloadError):
    pass


@strawberry.type
class SubscribePayload:
    payment: PaymentType | None = None
    subscription: SubscriptionType | None = None
    errors: list[SubscribeError] = strawberry.field(default_factory=list)


@strawberry.input
class CancelSubscriptionInput:
    subscription_id: relay.GlobalID
    mode: CancelMode = strawberry.field(
        description="AT_PERIOD_END: no renewal, access to the period's end (a past-due subscription, whose "
        "paid period is over, ends at once). NOW_WITH_REFUND: money back per the refund rule (see refundQuote), "
        "access ends when the refund succeeds; a refund YooKassa declines is a REFUND_CANCELED error."
    )
    idempotency_key: str | None = strawberry.field(
        default=None, description="Unique per request: a repeat with the same key returns the first result."
    )


@strawberry.type
class CancelSubscriptionError(PayloadError):
    pass


@strawberry.type
class CancelSubscriptionPayload:
    subscription: SubscriptionType | None = None
    refund: RefundType | None = None
    errors: list[CancelSubscriptionError] = strawberry.field(default_factory=list)


@strawberry.input
class SetAutoRenewInput:
    subscription_id: relay.GlobalID
    enabled: bool


@strawberry.type
class SetAutoRenewError(PayloadError):
    pass


@strawberry.type
class SetAutoRenewPayload:
    subscription: SubscriptionType | None = None
    errors: list[SetAutoRenewError] = strawberry.field(default_factory=list)


@strawberry.input
class RemovePaymentMethodInput:
    id: relay.GlobalID


@strawberry.type
class RemovePaymentMethodError(PayloadError):
    pass


@strawberry.type
class RemovePaymentMethodPayload:
    payment_method: PaymentMethodType | None = None
    errors: list[RemovePaymentMethodError] = strawberry.field(default_factory=list)


@strawberry.type
class BillingMutations:
    @strawberry_django.mutation(
        handle_django_errors=False,
        description="Start paying for a plan: open `payment.confirmationUrl` to pay on YooKassa's page.",
    )
    def subscribe(self, info: Info, input: SubscribeInput) -> SubscribePayload:
        viewer = info.context.viewer

        def call() -> dict:
            result = services.subscription_start_checkout(
                viewer_id=viewer.id,
                viewer_email=viewer.email,
                plan_id=_pk_of(input.plan_id, "Plan", field="planId"),
                return_url=input.return_url,
                save_payment_method=input.save_payment_method,
                idempotency_key=input.idempotency_key,
            )
            return {"payment": result.payment, "subscription": result.subscription}

        return mutation_payload(SubscribePayload, SubscribeError, call)

    @strawberry_django.mutation(
        handle_django_errors=False,
        description="Cancel a subscription at its period's end, or now with a refund.",
    )
    def cancel_subscription(self, info: Info, input: CancelSubscriptionInput) -> CancelSubscriptionPayload:
        viewer = info.context.viewer

        def call() -> dict:
            result = services.subscription_cancel(
                viewer_id=viewer.id,
                subscription_id=node_uuid(
                    input.subscription_id, "PlanSubscription", what="subscription", field="subscriptionId"
                ),
                mode=services.CancelMode(input.mode),
                idempotency_key=input.idempotency_key,
            )
            return {"subscription": result.subscription, "refund": result.refund}

        return mutation_payload(CancelSubscriptionPayload, CancelSubscriptionError, call)

    @strawberry_django.mutation(
        handle_django_errors=False,
        description="Switch automatic renewal on (with the saved card) or off (the subscription ends with its period).",
    )
    def set_auto_renew(self, info: Info, input: SetAutoRenewInput) -> SetAutoRenewPayload:
        viewer = info.context.viewer
        return mutation_payload(
            SetAutoRenewPayload,
            SetAutoRenewError,
            lambda: {
                "subscription": services.subscription_set_auto_renew(
                    viewer_id=viewer.id,
                    subscription_id=node_uuid(
                        input.subscription_id, "PlanSubscription", what="subscription", field="subscriptionId"
                    ),
                    enabled=input.enabled,
                )
            },
        )

    @strawberry_django.mutation(
        handle_django_errors=False,
        description="Forget a saved card; subscriptions that renewed with it stop renewing.",
    )
    def remove_payment_method(self, info: Info, input: RemovePaymentMethodInput) -> RemovePaymentMethodPayload:
        viewer = info.context.viewer
        return mutation_payload(
            RemovePaymentMethodPayload,
            RemovePaymentMethodError,
            lambda: {
                "payment_method": services.payment_method_remove(
                    viewer_id=viewer.id,
                    payment_method_id=node_uuid(input.id, "PaymentMethod", what="saved card", field="id"),
                )
            },
        )


def _pk_of(global_id: relay.GlobalID, type_name: str, *, field: str) -> int:
    # isascii: str.isdigit() also says yes to digits that int() refuses, such as "²".
    if global_id.type_name != type_name or not (global_id.node_id.isascii() and global_id.node_id.isdigit()):
        raise InvalidInput(f"Not a {type_name} id.", field=field)
    return int(global_id.node_id)
