"""python manage.py import_items <tenant_slug> <file.csv> [--dry-run]"""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from catalog.importing import ImportReport, import_items
from tenants import resolvers

# Below this size a progress bar is only noise.
PROGRESS_BYTES = 1_000_000


class Command(BaseCommand):
    help = "Import the catalogue from CSV (sku,name,category,price_fen[,active]); all rows or none."

    def add_arguments(self, parser):
        parser.add_argument("tenant_slug")
        parser.add_argument("file", type=Path)
        parser.add_argument("--dry-run", action="store_true", help="validate and preview, write nothing")

    def handle(self, *args, tenant_slug: str, file: Path, dry_run: bool, **options):
        tenant = resolvers.tenant_by_slug(tenant_slug)
        if tenant is None:
            raise CommandError(f"no tenant {tenant_slug!r}")
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from None
        progress = None
        if len(data) >= PROGRESS_BYTES and options.get("verbosity", 1) >= 1:
            lines = data.count(b"\n")

            def progress(rows):
                return tqdm(rows, total=lines, unit="row", desc="parse", file=sys.stderr, leave=False)

        report = import_items(tenant, data, dry_run=dry_run, source=file.name, progress=progress)
        if not report.ok:
            for error in report.errors:
                self.stderr.write(str(error))
            raise CommandError(f"{len(report.errors)} error(s) in {report.total_rows} row(s); nothing imported")
        self._print(report, dry_run)

    def _print(self, report: ImportReport, dry_run: bool) -> None:
        out = self.stdout
        out.write(f"rows: {report.total_rows}  new: {report.created}  updated: {report.updated}  "
                  f"unchanged: {report.unchanged}  new categories: {len(report.new_categories)}")
        if report.new_categories:
            out.write("new categories: " + ", ".join(report.new_categories))
        for row in report.preview:
            changed = f" ({', '.join(row.changed)})" if row.changed else ""
            out.write(f"  {row.line:>6}  {row.status:<9}  {row.sku}  {row.name}  {row.category}  "
                      f"{row.price_fen}  {'active' if row.active else 'inactive'}{changed}")
        if report.total_rows > len(report.preview):
            out.write(f"  … {report.total_rows - len(report.preview)} more")
        if dry_run:
            out.write("dry run: nothing written")
        else:
            out.write(self.style.SUCCESS(f"imported {report.created + report.updated} change(s)"))
