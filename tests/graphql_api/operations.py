"""The schema's real operations with arguments, and strategies for their variables keyed by the
operations' real variable names: values of the right type but hostile, and wrongly typed ones, so
that the fuzz reaches the resolvers and services rather than only the variable validator."""

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from hypothesis import strategies as st
from strawberry.relay import to_base64

from tests.fuzzing import hostile_ints, hostile_texts, mostly, wrongly_typed

# Type names of relay ids: ours, and ones no object has.
TYPE_NAMES = ["Plan", "PlanSubscription", "Payment", "PaymentMethod", "Refund", "Viewer", "Subscription", "Nope", ""]
ODD_PKS = ["0", "1", "-1", "99999999999999999999", "", "1.0", " 1", "²", "\x00", "00000000-0000-0000-0000-000000000000"]

RETURN_URLS = [
    "https://cinema.example/back",
    "https://www.cinema.example/a?b=c#d",
    "HTTPS://CINEMA.EXAMPLE/",
    "https://localhost/",
    "https://127.0.0.1:8443/x",
    "https://[::1]/",
    "https://xn--e1afmkfd.cinema.example/",
    "https://пример.cinema.example/",
    "http://cinema.example/",
    "https://cinema.example:99999/",
    "https://cinema.example:0/",
    "https://user:pw@cinema.example/",
    "https://evil.example/",
    "https://cinema.example.evil.example/",
    "https://evilcinema.example/",
    "https://cinema.example\\@evil.example/",
    "https://cinema.example/\t",
    "https://cinema.example/\x00",
    "https://cinema.example/\ud800",
    "https://cinema.example/" + "a" * 2020,
    "https://cinema.example/" + "a" * 10_000,
    "//cinema.example/",
    "/relative",
    "javascript:alert(1)",
    "data:text/html,hi",
    "ftp://cinema.example/",
]
return_urls = st.one_of(
    st.sampled_from(RETURN_URLS),
    st.text(max_size=30).map(lambda path: "https://cinema.example/" + path),
    hostile_texts,
)
idempotency_keys = st.one_of(
    st.none(),
    st.uuids().map(str),
    st.sampled_from(["k", "k" * 128, "k" * 129, "k" * 10_000, "", " ", "k\x00", "\ud800", "\u200b", "é" * 128]),
    st.text(min_size=1, max_size=130),
)
cancel_modes = mostly(
    st.sampled_from(["AT_PERIOD_END", "NOW_WITH_REFUND"]),
    st.sampled_from(["at_period_end", "NOW", "", "AT_PERIOD_END ", "NOW_WITH_REFUND\x00", "CancelMode.AT_PERIOD_END"]),
)
cursors = st.one_of(
    hostile_texts,
    st.binary(max_size=60).map(lambda data: base64.b64encode(data).decode()),
    st.text(max_size=40).map(lambda text: base64.b64encode(b"orderedcursor:" + text.encode()).decode()),
    st.sampled_from(["b3JkZXJlZGN1cnNvcjpbXQ==", "b3JkZXJlZGN1cnNvcjpbbnVsbF0=", "YXJyYXljb25uZWN0aW9uOjA="]),
)


def relay_ids(ids: dict[str, list[str]], type_name: str):
    """Ids of real rows of the type (the viewer's and another viewer's), of rows of other types, of
    no row, and garbage."""
    return mostly(
        st.one_of(
            st.sampled_from(ids[type_name]),
            st.sampled_from(ids["any"]),
            st.builds(to_base64, st.sampled_from(TYPE_NAMES), st.sampled_from(ODD_PKS) | st.uuids().map(str)),
            st.builds(to_base64, st.sampled_from(TYPE_NAMES), st.text(max_size=20)),
        ),
        st.one_of(st.binary(max_size=40).map(lambda data: base64.b64encode(data).decode()), hostile_texts),
    )


def input_objects(fields: dict):
    """The input type's fields, now and then one missing or one extra."""

    def reshape(values: dict, missing: list[str], extra: dict) -> dict:
        return {key: value for key, value in values.items() if key not in missing} | extra

    return mostly(
        st.fixed_dictionaries(fields),
        st.builds(
            reshape,
            st.fixed_dictionaries(fields),
            st.lists(st.sampled_from(sorted(fields)), max_size=1),
            st.dictionaries(st.sampled_from(["extra", "clientMutationId", "planID", "__typename"]), wrongly_typed),
        ),
    )


@dataclass(frozen=True)
class Operation:
    query: str
    # Strategies of each variable's values, from the relay ids of the rows there are.
    variables: Callable[[dict[str, list[str]]], dict]
    optional: frozenset[str] = frozenset()

    @property
    def is_mutation(self) -> bool:
        return self.query.startswith("mutation")

    def well_typed(self, real_ids: dict[str, list[str]]):
        return self._dictionaries(self.variables(real_ids))

    def any_typed(self, real_ids: dict[str, list[str]]):
        return self._dictionaries(
            {name: st.one_of(values, wrongly_typed) for name, values in self.variables(real_ids).items()}
        )

    def _dictionaries(self, values: dict):
        required = {name: strategy for name, strategy in values.items() if name not in self.optional}
        optional = {name: strategy for name, strategy in values.items() if name in self.optional}
        return st.fixed_dictionaries(required, optional=optional)


OPERATIONS = {
    "payments": Operation(
        "query($after: String, $before: String, $first: Int, $last: Int) { me { payments(after: $after,"
        " before: $before, first: $first, last: $last) { totalCount edges { cursor node { id status } } } } }",
        lambda ids: {"after": cursors, "before": cursors, "first": hostile_ints, "last": hostile_ints},
        optional=frozenset({"after", "before", "first", "last"}),
    ),
    "payment": Operation(
        "query($id: ID!) { payment(id: $id) { id status refunds { id } subscription { id } } }",
        lambda ids: {"id": relay_ids(ids, "Payment")},
    ),
    "refundQuote": Operation(
        "query($subscriptionId: ID!) { refundQuote(subscriptionId: $subscriptionId) { amount { amount } rule } }",
        lambda ids: {"subscriptionId": relay_ids(ids, "PlanSubscription")},
    ),
    "subscribe": Operation(
        "mutation($input: SubscribeInput!) { subscribe(input: $input) {"
        " payment { id status } subscription { id status } errors { code field } } }",
        lambda ids: {
            "input": input_objects(
                {
                    "planId": relay_ids(ids, "Plan"),
                    "returnUrl": return_urls,
                    "idempotencyKey": idempotency_keys,
                    "savePaymentMethod": st.booleans(),
                }
            )
        },
    ),
    "cancelSubscription": Operation(
        "mutation($input: CancelSubscriptionInput!) { cancelSubscription(input: $input) {"
        " subscription { id status } refund { id status } errors { code field } } }",
        lambda ids: {
            "input": input_objects(
                {
                    "subscriptionId": relay_ids(ids, "PlanSubscription"),
                    "mode": cancel_modes,
                    "idempotencyKey": idempotency_keys,
                }
            )
        },
    ),
    "setAutoRenew": Operation(
        "mutation($input: SetAutoRenewInput!) { setAutoRenew(input: $input) {"
        " subscription { id autoRenew } errors { code field } } }",
        lambda ids: {
            "input": input_objects({"subscriptionId": relay_ids(ids, "PlanSubscription"), "enabled": st.booleans()})
        },
    ),
    "removePaymentMethod": Operation(
        "mutation($input: RemovePaymentMethodInput!) { removePaymentMethod(input: $input) {"
        " paymentMethod { id } errors { code field } } }",
        lambda ids: {"input": input_objects({"id": relay_ids(ids, "PaymentMethod")})},
    ),
}


def relay_ids_of_rows(plans, subscriptions) -> dict[str, list[str]]:
    """The relay ids of these plans and subscriptions, their payments and cards, by type; and under
    "any", the same keys dressed as ids of every type."""
    keys = {"Plan": [str(plan.pk) for plan in plans]}
    keys["PlanSubscription"] = [str(subscription.pk) for subscription in subscriptions]
    keys["Payment"] = [str(payment.pk) for subscription in subscriptions for payment in subscription.payments.all()]
    keys["PaymentMethod"] = [str(s.payment_method_id) for s in subscriptions if s.payment_method_id]
    every_key = [key for type_keys in keys.values() for key in type_keys] + [str(uuid.uuid4())]
    ids = {type_name: [to_base64(type_name, key) for key in type_keys] for type_name, type_keys in keys.items()}
    return ids | {"any": [to_base64(type_name, key) for type_name in keys for key in every_key]}
