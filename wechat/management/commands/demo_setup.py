"""`make demo`: a demo tenant wired to the local WeChat sandbox, an owner login, and demo data.

Idempotent: running it again keeps what exists. Refuses to run when the sandbox is off, so it can
never point a real merchant's settings at fake WeChat keys.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from tenants import actions, resolvers
from tenants.models import StaffMembership
from wechat.payv3 import generate_private_key_pem
from wechat.sandbox.platform import platform_key

DEMO_APPID = "wxdemo0000000000001"
DEMO_MCHID = "1900000109"


class Command(BaseCommand):
    help = "Create (or keep) a demo tenant on the WeChat sandbox with an owner login and demo data."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--username", default="demo")
        parser.add_argument("--password", default="jingzhun-demo")
        parser.add_argument("--members", type=int, default=300)

    def handle(self, *args, slug, username, password, members, **options):
        if not settings.WECHAT_SANDBOX:
            raise CommandError("demo_setup only runs with WECHAT_SANDBOX=1 (the demo talks to the local sandbox).")
        with transaction.atomic():
            tenant = resolvers.tenant_by_slug(slug)
            if tenant is None:
                tenant = actions.create_tenant(slug=slug, name="精准咖啡 Demo Coffee", appid=DEMO_APPID,
                                               app_secret=secrets.token_hex(16))
                self.stdout.write(f"created tenant {slug} (id {tenant.pk})")
            self._pay_account(tenant)
            user = get_user_model().objects.filter(username=username).first()
            if user is None:
                actions.create_staff(tenant, username=username, role=StaffMembership.Role.OWNER, password=password)
            elif not StaffMembership.objects.filter(user=user, tenant=tenant).exists():
                actions.create_staff(tenant, username=username, role=StaffMembership.Role.OWNER)
        commands = get_commands()
        if "seed_demo" in commands:
            call_command("seed_demo", slug, members=members, stdout=self.stdout)
        if "recompute_profiles" in commands:
            call_command("recompute_profiles", slug, stdout=self.stdout)

    def _pay_account(self, tenant) -> None:
        """Public-key mode against the sandbox's platform key, with a fresh merchant key pair."""
        existing = resolvers.pay_credentials_for(tenant)
        if existing is not None and existing.apiv3_key:
            return
        platform = platform_key()
        actions.set_pay_account(
            tenant,
            mchid=DEMO_MCHID,
            apiv3_key=secrets.token_hex(16),
            merchant_private_key=generate_private_key_pem(),
            merchant_cert_serial=secrets.token_hex(20).upper(),
            public_key_pem=platform.public_pem,
            public_key_id=platform.public_key_id,
            v2_key=secrets.token_hex(16),
        )
