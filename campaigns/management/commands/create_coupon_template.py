"""python manage.py create_coupon_template <tenant_slug> --name N --kind K --value V [...] — prints the id."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from campaigns.actions import create_coupon_template
from campaigns.models import CouponTemplate
from tenants import resolvers


class Command(BaseCommand):
    help = "Create a coupon template (value in fen, or percent off for percent_off); prints its id."

    def add_arguments(self, parser):
        parser.add_argument("tenant_slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--kind", required=True, choices=CouponTemplate.Kind.values)
        parser.add_argument("--value", type=int, default=0, help="fen; percent off for percent_off")
        parser.add_argument("--threshold", type=int, default=0, help="fen (满 X)")
        parser.add_argument("--cap", type=int, default=None, help="maximum discount, fen")
        parser.add_argument("--stock", type=int, default=None, help="total stock (default: unlimited)")
        parser.add_argument("--per-member", type=int, default=1, help="per-member limit (0: unlimited)")
        parser.add_argument("--valid-days", type=int, default=30, help="days valid from claim")
        parser.add_argument("--exchange-sku", default=None, help="the free item of an exchange coupon")
        parser.add_argument("--activate", action="store_true", help="active at once (default: draft)")

    def handle(self, *args, tenant_slug: str, **o):
        tenant = resolvers.tenant_by_slug(tenant_slug)
        if tenant is None:
            raise CommandError(f"no tenant {tenant_slug!r}")
        fields = {
            "name": o["name"], "kind": o["kind"], "value": o["value"], "threshold_fen": o["threshold"],
            "cap_fen": o["cap"], "stock": o["stock"], "per_member_limit": o["per_member"],
            "valid_days": o["valid_days"],
        }
        for name in ("value", "threshold_fen", "stock", "per_member_limit", "valid_days", "cap_fen"):
            if fields[name] is not None and fields[name] < 0:
                raise CommandError(f"--{name.replace('_fen', '').replace('_', '-')} must not be negative")
        if o["exchange_sku"]:
            from catalog.models import Item
            from tenants.context import tenant_context

            with tenant_context(tenant):
                item = Item.objects.filter(sku=o["exchange_sku"]).first()
            if item is None:
                raise CommandError(f"no item {o['exchange_sku']!r}")
            fields["exchange_item"] = item.pk
        try:
            template = create_coupon_template(tenant, activate=o["activate"], **fields)
        except ValidationError as exc:
            messages = [f"{field}: {m}" for field, ms in exc.message_dict.items() for m in ms]
            raise CommandError("\n".join(messages)) from None
        self.stdout.write(str(template.pk))
