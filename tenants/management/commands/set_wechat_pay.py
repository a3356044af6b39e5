"""set_wechat_pay <tenant_slug> --mchid … : the tenant's WeChat Pay account, keys read from files."""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tenants import actions, resolvers
from tenants.management.commands.create_tenant import validation_message
from tenants.pay_material import certificate_serial, load_certificate
from tenants.pay_notify import notify_url_v2, notify_url_v3

MAX_FILE_BYTES = 64 * 1024


def read_pem(path: str, what: str) -> str:
    file = Path(path)
    try:
        if file.stat().st_size > MAX_FILE_BYTES:
            raise CommandError(f"{what} file {path} is too large for a PEM file (over 64 KB).")
        return file.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        raise CommandError(f"{what} file {path} is not PEM text.") from None
    except OSError as exc:
        raise CommandError(f"Cannot read {what} file {path}: {exc.strerror or exc}.") from None


class Command(BaseCommand):
    help = ("Set a tenant's WeChat Pay account (keys are stored encrypted) and print the v3 and v2 notify "
            "URLs. Options left out keep what is stored.")

    def add_arguments(self, parser):
        parser.add_argument("tenant_slug")
        parser.add_argument("--mchid", required=True)
        parser.add_argument("--apiv3-key", dest="apiv3_key", required=True, help="the 32-character APIv3 key")
        parser.add_argument("--merchant-key-file", dest="merchant_key_file", required=True,
                            help="apiclient_key.pem")
        parser.add_argument("--merchant-cert-serial", dest="merchant_cert_serial", required=True,
                            help="serial number of the merchant API certificate")
        parser.add_argument("--public-key-file", dest="public_key_file", help="WeChat Pay public key (pub_key.pem)")
        parser.add_argument("--public-key-id", dest="public_key_id", help="PUB_KEY_ID_… of that public key")
        parser.add_argument("--platform-cert-file", dest="platform_cert_files", action="append", default=[],
                            help="a WeChat Pay platform certificate (repeatable); its serial is read from it")
        parser.add_argument("--v2-key", dest="v2_key", help="the 32-character APIv2 key")

    def handle(self, *args, tenant_slug, mchid, apiv3_key, merchant_key_file, merchant_cert_serial,
               public_key_file=None, public_key_id=None, platform_cert_files=(), v2_key=None, **options):
        tenant = resolvers.tenant_by_slug(tenant_slug)
        if tenant is None:
            raise CommandError(f"No tenant with slug {tenant_slug!r}.")
        if bool(public_key_file) != bool(public_key_id):
            raise CommandError("--public-key-file and --public-key-id go together.")
        fields = {
            "apiv3_key": apiv3_key,
            "merchant_private_key": read_pem(merchant_key_file, "merchant key"),
            "merchant_cert_serial": merchant_cert_serial,
            "v2_key": v2_key or "",
        }
        if public_key_file:
            fields["public_key_pem"] = read_pem(public_key_file, "public key")
            fields["public_key_id"] = public_key_id
        certs: dict[str, str] = {}
        for path in platform_cert_files:
            pem = read_pem(path, "platform certificate")
            try:
                certs[certificate_serial(load_certificate(pem))] = pem
            except ValidationError:
                raise CommandError(f"Platform certificate file {path} is not a PEM certificate.") from None
        if certs:
            stored = resolvers.pay_credentials_for(tenant)
            fields["platform_certs"] = {**(stored.platform_certs if stored else {}), **certs}
        try:
            account = actions.set_pay_account(tenant, mchid=mchid, **fields)
        except ValidationError as exc:
            raise CommandError(validation_message(exc)) from None
        self.stdout.write(f"WeChat Pay account {account.mchid} set for {tenant.slug}.")
        for serial in sorted(certs):
            self.stdout.write(f"Platform certificate {serial} stored.")
        self.stdout.write(f"v3 notify URL: {notify_url_v3(account)}")
        self.stdout.write(f"v2 notify URL: {notify_url_v2(account)}")
