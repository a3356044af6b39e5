"""create_staff <tenant_slug> <username> --role R [--password P]: a console user for that tenant."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tenants import actions, resolvers
from tenants.management.commands.create_tenant import validation_message
from tenants.models import StaffMembership


class Command(BaseCommand):
    help = ("Give a user a role in a tenant's console. A new user needs a password: given with "
            "--password, or generated and printed. An existing user keeps their password.")

    def add_arguments(self, parser):
        parser.add_argument("tenant_slug")
        parser.add_argument("username")
        parser.add_argument("--role", required=True, help=" | ".join(StaffMembership.Role.values))
        parser.add_argument("--password", help="initial password of a new user (generated if omitted)")
        parser.add_argument("--email", default="")

    def handle(self, *args, tenant_slug, username, role, password=None, email="", **options):
        tenant = resolvers.tenant_by_slug(tenant_slug)
        if tenant is None:
            raise CommandError(f"No tenant with slug {tenant_slug!r}.")
        if role not in StaffMembership.Role.values:
            raise CommandError(f"Unknown role {role!r}: use one of {', '.join(StaffMembership.Role.values)}.")
        is_new = not get_user_model().objects.filter(username=(username or "").strip()).exists()
        generated = None
        if is_new and not password:
            generated = password = secrets.token_urlsafe(12)
        try:
            membership = actions.create_staff(tenant, username=username, role=role,
                                              password=password if is_new else None, email=email)
        except ValidationError as exc:
            raise CommandError(validation_message(exc)) from None
        self.stdout.write(f"{membership.user.get_username()} is now {membership.role} of {tenant.slug}.")
        if generated:
            self.stdout.write(f"Password: {generated}")
        elif not is_new and password:
            self.stderr.write("The user already existed: --password was ignored, their password is unchanged.")
