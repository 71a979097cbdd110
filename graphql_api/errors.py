"""Billing's domain errors as typed payload errors: `errors: [XError!]!` with an enum `code`."""

import strawberry

from billing.errors import BillingError, ErrorCode

BillingErrorCode = strawberry.enum(ErrorCode, name="BillingErrorCode", description="Why a billing request failed.")


@strawberry.interface
class PayloadError:
    code: BillingErrorCode
    message: str
    field: str | None = strawberry.field(description="The input field at fault, if one is.")


def error_fields(error: BillingError) -> dict:
    return {"code": error.code, "message": error.message, "field": error.field}
