from django.core.management.base import BaseCommand

from billing.claims import TOKEN_BUDGETS, claim_budget, token_size


class Command(BaseCommand):
    help = "How many subscriptions fit in a viewer's JWT with billing's entitlements claim (billing/claims.py)."

    def handle(self, *args, **options) -> None:
        self.stdout.write("Budgets: " + ", ".join(f"{name} = {size} bytes" for name, size in TOKEN_BUDGETS.items()))
        self.stdout.write(
            f"A typical Auth token without the claim: HS256 {token_size('HS256', [])} bytes, "
            f"RS256 {token_size('RS256', [])} bytes (the claim with no subscription included)."
        )
        self.stdout.write(f"{'algorithm':<10}{'entitlement':<13}{'bytes each':>11}  {'budget':<20}{'fit':>5}")
        for line in claim_budget():
            self.stdout.write(
                f"{line.algorithm:<10}{line.kind:<13}{line.per_subscription_bytes:>11.1f}  "
                f"{line.budget_name:<20}{line.fit:>5}"
            )
