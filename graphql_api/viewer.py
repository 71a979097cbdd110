"""`me` and `payment(id)`: a viewer reads only their own billing."""

import uuid

import strawberry
import strawberry_django
from django.db.models import QuerySet
from strawberry import relay
from strawberry.types import Info

from billing import selectors, services
from graphql_api.billing_types import PaymentMethodType, PaymentType, RefundQuoteType, SubscriptionType
from graphql_api.connections import BoundedCursorConnection


@strawberry.type(name="Viewer")
class ViewerType:
    id: strawberry.ID
    email: str | None

    @property
    def viewer_id(self) -> uuid.UUID:
        return uuid.UUID(str(self.id))

    @strawberry_django.field(description="The subscription that gives access now, if any.")
    def active_subscription(self) -> SubscriptionType | None:
        return selectors.subscription_get_active_for_viewer(viewer_id=self.viewer_id)

    @strawberry_django.field(description="Every subscription, newest first.")
    def subscriptions(self) -> list[SubscriptionType]:
        return selectors.subscription_list_for_viewer(viewer_id=self.viewer_id)

    @strawberry_django.connection(BoundedCursorConnection[PaymentType], description="Payments, newest first.")
    def payments(self) -> QuerySet:
        return selectors.payment_list_for_viewer(viewer_id=self.viewer_id)

    @strawberry_django.field(description="Saved cards for automatic renewal.")
    def payment_methods(self) -> list[PaymentMethodType]:
        return selectors.payment_method_list_for_viewer(viewer_id=self.viewer_id)


@strawberry.type
class ViewerQueries:
    @strawberry.field(description="The signed-in viewer.")
    def me(self, info: Info) -> ViewerType:
        viewer = info.context.viewer
        return ViewerType(id=strawberry.ID(str(viewer.id)), email=viewer.email)

    @strawberry_django.field(description="One of the viewer's payments; null for any other id.")
    def payment(self, info: Info, id: relay.GlobalID) -> PaymentType | None:
        viewer = info.context.viewer
        payment_id = uuid_of(id, "Payment")
        return selectors.payment_get_for_viewer(viewer_id=viewer.id, payment_id=payment_id) if payment_id else None

    @strawberry_django.field(description="What canceling the subscription now would give back; null for any other id.")
    def refund_quote(self, info: Info, subscription_id: relay.GlobalID) -> RefundQuoteType | None:
        viewer = info.context.viewer
        subscription_pk = uuid_of(subscription_id, "PlanSubscription")
        subscription = (
            selectors.subscription_get_for_viewer(viewer_id=viewer.id, subscription_id=subscription_pk)
            if subscription_pk
            else None
        )
        if subscription is None:
            return None
        quote, _ = services.subscription_refund_quote(subscription=subscription)
        return RefundQuoteType.of(quote)


def uuid_of(global_id: relay.GlobalID, type_name: str) -> uuid.UUID | None:
    """The object's UUID from its relay id, or None when the id is of another type or malformed."""
    if global_id.type_name != type_name:
        return None
    try:
        return uuid.UUID(global_id.node_id)
    except ValueError:
        return None
