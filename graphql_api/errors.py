"""Billing's domain errors as typed payload errors: `errors: [XError!]!` with an enum `code`.

Every mutation runs its service through `mutation_payload`: a `BillingError` becomes the payload's
typed error, and what the service committed before it failed (`error.result`: a payment under its
key, its subscription, a refund) is returned with it, so that the client can retry with the same
key (PROVIDER_OUTCOME_UNKNOWN) and see what it is waiting for.
"""

import dataclasses
import uuid
from collections.abc import Callable
from typing import TypeVar

import strawberry
from strawberry import relay

from billing.errors import BillingError, ErrorCode, NotFound
from graphql_api.viewer import uuid_of

BillingErrorCode = strawberry.enum(ErrorCode, name="BillingErrorCode", description="Why a billing request failed.")

Payload = TypeVar("Payload")


@strawberry.interface
class PayloadError:
    code: BillingErrorCode
    message: str
    field: str | None = strawberry.field(description="The input field at fault, if one is.")


def error_fields(error: BillingError) -> dict:
    return {"code": error.code, "message": error.message, "field": error.field}


def mutation_payload(payload: type[Payload], error_type: type[PayloadError], call: Callable[[], dict]) -> Payload:
    """`payload(**call())`; or, when the call raises a BillingError, the payload with that error
    and whatever of the committed rows the payload has a field for."""
    try:
        return payload(**call())
    except BillingError as error:
        fields = {field.name for field in dataclasses.fields(payload)}
        committed = {name: row for name, row in error.result.items() if name in fields}
        return payload(**committed, errors=[error_type(**error_fields(error))])


def node_uuid(global_id: relay.GlobalID, type_name: str, *, what: str, field: str) -> uuid.UUID:
    """The id inside a global id of `type_name`; anything else reads as no such `what` (NotFound)."""
    pk = uuid_of(global_id, type_name)
    if pk is None:
        raise NotFound(f"There is no such {what}.", field=field)
    return pk
