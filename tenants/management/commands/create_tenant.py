"""create_tenant <slug> --name N [--appid A --app-secret S] [--mchid M]: prints the new tenant's id."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tenants import actions


def validation_message(exc: ValidationError) -> str:
    return " ".join(exc.messages)


class Command(BaseCommand):
    help = "Create a tenant, optionally with its Mini Program and WeChat Pay merchant id; prints the tenant id."

    def add_arguments(self, parser):
        parser.add_argument("slug", help="URL name of the tenant: lowercase letters, digits and hyphens")
        parser.add_argument("--name", required=True, help="display name")
        parser.add_argument("--appid", help="Mini Program AppID (wx…)")
        parser.add_argument("--app-secret", dest="app_secret", help="Mini Program AppSecret")
        parser.add_argument("--mchid", help="WeChat Pay merchant id (set its keys with set_wechat_pay)")

    def handle(self, *args, slug, name, appid=None, app_secret=None, mchid=None, **options):
        if app_secret and not appid:
            raise CommandError("--app-secret needs --appid.")
        try:
            tenant = actions.create_tenant(slug=slug, name=name, appid=appid, app_secret=app_secret, mchid=mchid)
        except ValidationError as exc:
            raise CommandError(validation_message(exc)) from None
        self.stdout.write(str(tenant.pk))
