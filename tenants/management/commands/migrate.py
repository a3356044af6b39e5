"""`migrate` as the table owner (MIGRATION_DATABASE_URL), so the app role never owns a table."""

from django.core.management.commands.migrate import Command as DjangoMigrateCommand

from tenants.db_roles import owner_connection


class Command(DjangoMigrateCommand):
    def handle(self, *args, **options):
        with owner_connection(options.get("database") or "default"):
            return super().handle(*args, **options)
