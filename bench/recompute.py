"""The profile computation at scale: seed_demo into a bench tenant, then recompute_profiles, timed.

    .venv/bin/python bench/recompute.py [--members 100000] [--days 90] [--seed 1] [--keep]

Creates a fresh database (``jingzhun_bench_recompute`` on the server of ``MIGRATION_DATABASE_URL``,
default the local CI cluster), migrates it as the owner role and, as the RLS-bound app role, seeds
one tenant with ``seed_demo`` (about ten events per member: 100,000 members give about a million
events) plus a look-alike tenant with a tenth of that, then runs the computation for the big tenant
through the same function the task and the command use, twice (the second run shows a re-run costs
the same and rewrites the same number of rows). Prints each step's seconds, the run's metrics and
the process's peak memory. The database is dropped at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import with_db

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OWNER = "postgres://jingzhun_owner@127.0.0.1:5432/jingzhun"
DEFAULT_APP = "postgres://jingzhun_app@127.0.0.1:5432/jingzhun"


def prepare_environment(args) -> None:
    from cryptography.fernet import Fernet

    os.environ.update({
        "DATABASE_URL": with_db(args.app_url, args.database),
        "MIGRATION_DATABASE_URL": with_db(args.owner_url, args.database),
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "WECHAT_SANDBOX": "0",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    })
    for name in ("REDIS_URL", "TEST_DATABASE_NAME"):
        os.environ.pop(name, None)


def owner_sql(args, *statements: str) -> None:
    import psycopg

    with psycopg.connect(args.owner_url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--database", default="jingzhun_bench_recompute")
    parser.add_argument("--owner-url", default=os.environ.get("MIGRATION_DATABASE_URL", DEFAULT_OWNER))
    parser.add_argument("--app-url", default=os.environ.get("DATABASE_URL", DEFAULT_APP))
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    prepare_environment(args)
    owner_sql(args, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)', f'CREATE DATABASE "{args.database}"')
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, check=True,
                       env=os.environ, timeout=900)
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        from profiles.computation import recompute
        from profiles.models import Event, MemberProfile, Recommendation
        from tenants import actions
        from tenants.context import tenant_context

        big = actions.create_tenant(slug="bench", name="Bench Coffee")
        actions.create_tenant(slug="bench-twin", name="Bench Twin")
        planted = Path(tempfile.mkdtemp(prefix="jz-bench-recompute-"))
        started = time.monotonic()
        call_command("seed_demo", "bench", members=args.members, days=args.days, seed=args.seed,
                     planted_dir=planted, verbosity=0, stdout=open(os.devnull, "w"))
        seeded = time.monotonic() - started
        call_command("seed_demo", "bench-twin", members=max(args.members // 10, 100), days=args.days,
                     seed=args.seed, planted_dir=planted, verbosity=0,
                     stdout=open(os.devnull, "w"))
        with tenant_context(big):
            events = Event.objects.count()
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        print(f"seeded {args.members:,} members, {events:,} events in {seeded:.0f} s")
        for n in range(args.runs):
            t = time.monotonic()
            run = recompute.recompute(big, trigger="bench")
            wall = time.monotonic() - t
            s = run.stats
            with tenant_context(big):
                profiles, recs = MemberProfile.objects.count(), Recommendation.objects.count()
            print(f"run {n + 1}: {run.state} in {wall:.1f} s wall "
                  f"(profiles {profiles:,}, recommendations {recs:,}, pairs {s['affinities']['pairs']})")
            print("  steps (s): " + json.dumps(s["seconds"]))
            print(f"  k={s['clusters']['k']} silhouette={s['clusters']['silhouette']} "
                  f"AUC={s['propensity']['auc']} (train {s['propensity']['train_rows']:,}) "
                  f"spend MAE 30d ¥{(s['spend']['mae_fen_30d'] or 0) / 100:.2f} ratio {s['spend']['total_ratio']}")
            print("  clusters: " + "; ".join(f"{c['label']} {c['size']:,}" for c in s["clusters"]["items"]))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak memory of this process: {peak:.0f} MB")
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            owner_sql(args, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
