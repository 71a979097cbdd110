import uuid
from decimal import Decimal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from billing.errors import GatewayError
from billing.gateway import get_gateway, yookassa_config
from billing.gateway.interface import NewPayment
from billing.gateway.yookassa import YooKassaGateway
from billing.money import Money


class Command(BaseCommand):
    help = (
        "Create a payment in the YooKassa sandbox through the billing gateway (the official SDK) and print its "
        "payment page, to try the sandbox by hand. It does not touch billing's own records."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--amount", type=Decimal, default=Decimal("299.00"))
        parser.add_argument("--description", default="Sandbox checkout")
        parser.add_argument("--return-url", default=f"http://127.0.0.1:{settings.WEB_PORT}/healthz")
        parser.add_argument(
            "--port",
            type=int,
            help="the port of a sandbox started with `runsandbox --port` (default: the configured YOOKASSA_API_URL)",
        )

    def handle(self, *args, **options) -> None:
        if not settings.YOOKASSA_SANDBOX:
            raise CommandError("Real YooKassa credentials are configured: this command only talks to the sandbox.")
        if options["port"] is None:
            gateway = get_gateway()
        else:
            gateway = YooKassaGateway(yookassa_config(api_url=f"http://127.0.0.1:{options['port']}/v3"))
        try:
            payment = gateway.create_payment(
                NewPayment(
                    amount=Money.of(options["amount"], "RUB"),
                    description=options["description"],
                    return_url=options["return_url"],
                ),
                idempotence_key=f"sandbox-checkout-{uuid.uuid4()}",
            )
        except GatewayError as error:
            raise CommandError(f"The sandbox did not take the payment: {error}") from error
        self.stdout.write(f"payment {payment.id} ({payment.status}, {payment.amount})")
        self.stdout.write(f"pay it at {payment.confirmation_url} with card 5555 5555 5555 4444")
