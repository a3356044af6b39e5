"""Catalogue import (``import_items``) of a large CSV on PostgreSQL: new rows, changed rows, unchanged rows.

    .venv/bin/python bench/catalog_import.py [--rows 100000] [--runs 3] [--keep]

Creates a fresh database (``jingzhun_bench_catalog`` on the server of ``MIGRATION_DATABASE_URL``),
migrates it as the owner and, as the RLS-bound app role, times ``catalog.importing.import_items``
(parse, validate, plan and write, in the tenant context, as the command and the console run it)
on a generated file of N rows in 50 categories: a dry run and the import of all-new rows, then of
a file where every price changed, then of the same file again (all unchanged). Each scenario runs
``--runs`` times on a fresh tenant (the "changed" and "unchanged" ones on a tenant that already
holds the rows); the median is printed. A look-alike tenant with the same SKUs is imported first,
so every statement works next to another tenant's rows.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import with_db

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OWNER = "postgres://jingzhun_owner@127.0.0.1:5432/jingzhun"
DEFAULT_APP = "postgres://jingzhun_app@127.0.0.1:5432/jingzhun"


def _admin(owner_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute(sql)


def csv_file(rows: int, price_step: int = 0) -> bytes:
    lines = ["sku,name,category,price_fen,active"]
    lines += [f"SKU-{i:07d},商品 {i} 号 · 标准装,分类 {i % 50:02d},{100 + i % 9000 + price_step},{1 if i % 10 else 0}"
              for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database", default="jingzhun_bench_catalog")
    parser.add_argument("--owner-url", default=os.environ.get("MIGRATION_DATABASE_URL", DEFAULT_OWNER))
    parser.add_argument("--app-url", default=os.environ.get("DATABASE_URL", DEFAULT_APP))
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    if not args.owner_url.startswith("postgres"):
        raise SystemExit("needs PostgreSQL: set MIGRATION_DATABASE_URL / DATABASE_URL or pass --owner-url/--app-url")

    from cryptography.fernet import Fernet

    os.environ.update({
        "DATABASE_URL": with_db(args.app_url, args.database),
        "MIGRATION_DATABASE_URL": with_db(args.owner_url, args.database),
        "DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(48), "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "testserver", "SECURE_SSL_REDIRECT": "0", "WECHAT_SANDBOX": "0", "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    })
    os.environ.pop("REDIS_URL", None)
    os.environ.pop("TEST_DATABASE_NAME", None)
    _admin(args.owner_url, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    _admin(args.owner_url, f'CREATE DATABASE "{args.database}"')
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, check=True,
                       timeout=600)
        sys.path.insert(0, str(ROOT))
        run(args)
    finally:
        if "django" in sys.modules:
            from django.db import connections

            connections.close_all()
        if not args.keep:
            _admin(args.owner_url, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')


def run(args) -> None:
    import django

    django.setup()
    from catalog.importing import import_items
    from catalog.models import Item
    from tenants import actions as tenant_actions
    from tenants.context import tenant_context

    new, changed = csv_file(args.rows), csv_file(args.rows, price_step=1)
    print(f"# catalogue import, {args.rows:,} rows ({len(new) / 1e6:.1f} MB), median of {args.runs}; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    lookalike = tenant_actions.create_tenant(slug="lookalike", name="Look-alike")
    import_items(lookalike, new)

    def timed(tenant, data, **kwargs) -> tuple[float, object]:
        started = time.perf_counter()
        report = import_items(tenant, data, **kwargs)
        elapsed = time.perf_counter() - started
        if report.errors:
            raise SystemExit(f"import failed: {report.errors[:3]}")
        return elapsed, report

    times: dict[str, list[float]] = {}
    for n in range(args.runs):
        tenant = tenant_actions.create_tenant(slug=f"bench-{n}", name=f"Bench {n}")
        for label, data, dry_run, expect in (
            ("new, dry run", new, True, (args.rows, 0, 0)),
            ("new", new, False, (args.rows, 0, 0)),
            ("every price changed, dry run", changed, True, (0, args.rows, 0)),
            ("every price changed", changed, False, (0, args.rows, 0)),
            ("unchanged", changed, False, (0, 0, args.rows)),
        ):
            elapsed, report = timed(tenant, data, dry_run=dry_run)
            got = (report.created, report.updated, report.unchanged)
            if got != expect or report.applied == dry_run:
                raise SystemExit(f"{label}: created/updated/unchanged {got}, applied {report.applied}")
            times.setdefault(label, []).append(elapsed)
        with tenant_context(tenant):
            stored = Item.objects.filter(price_fen__gt=100).count()
        if stored != args.rows:  # every price went up by one fen, so none is left at the minimum of 100
            raise SystemExit(f"expected {args.rows} items above 100 fen, found {stored}")
    with tenant_context(lookalike):
        untouched = Item.objects.filter(sku__in=["SKU-0000001", f"SKU-{args.rows - 1:07d}"]).values_list(
            "price_fen", flat=True)
        if sorted(untouched) != sorted([101, 100 + (args.rows - 1) % 9000]):
            raise SystemExit("the look-alike tenant's items changed")
    for label, values in times.items():
        print(f"{label:32s} {statistics.median(values):6.2f} s  (runs: {', '.join(f'{v:.2f}' for v in values)}; "
              f"{args.rows / statistics.median(values):,.0f} rows/s)", flush=True)


if __name__ == "__main__":
    main()
