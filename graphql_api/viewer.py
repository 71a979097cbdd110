"""`me` and `payment(id)`: a viewer reads only their own billing."""

import uuid

import strawberry
import strawberry_django
from django.db.models import QuerySet
from strawberry import relay
from strawberry.types import Info
from strawberry_django.relay import DjangoCursorConnection

from billing import selectors
from graphql_api.billing_types import PaymentMethodType, PaymentType, SubscriptionType


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

    @strawberry_django.connection(DjangoCursorConnection[PaymentType], description="Payments, newest first.")
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
        if id.type_name != "Payment":
            return None
        try:
            payment_id = uuid.UUID(id.node_id)
        except ValueError:
            return None
        return selectors.payment_get_for_viewer(viewer_id=viewer.id, payment_id=payment_id)
