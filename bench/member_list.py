"""The console member list at a million members: page times for filtered, sorted, deep pages.

    .venv/bin/python bench/member_list.py [--members 1000000] [--runs 5] [--requests 20] [--keep]

Creates a fresh database (``jingzhun_bench_members`` on the server of ``MIGRATION_DATABASE_URL``,
default the local CI cluster), migrates it as the owner role and, as the RLS-bound app role,
generates one tenant with N members (plus a look-alike tenant with N/20) in SQL with
``generate_series`` inside the tenant context: last seen over a year (10 % never), first seen over
two years, skewed points, three tiers, consents, masked phones, a VIP tag on ~10 %. Then it asks
``/console/<slug>/members/`` through Django's test client (middleware, tenant context, template:
the whole page) for each scenario, first pages and pages half a million rows deep, R runs of K
requests each, and prints per scenario the median of the runs' medians and of their p95s against
the 150 ms target. ``--extra-indexes`` repeats everything after adding the indexes the sorts by
points and first-seen would need (``(tenant, -points, id)``, ``(tenant, -first_seen_at, id)``).
The database is dropped at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

from harness import with_db

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 150.0
DEFAULT_OWNER = "postgres://jingzhun_owner@127.0.0.1:5432/jingzhun"
DEFAULT_APP = "postgres://jingzhun_app@127.0.0.1:5432/jingzhun"
NICKNAMES = ["小明", "小红", "阿强", "丽丽", "王芳", "李雷", "韩梅梅", "Lily", "Tom", "Grace", "张伟", "陈静",
             "刘洋", "Kevin", "Amy", "周杰", "吴磊", "赵敏", "孙悦", "Coco"]
EXTRA_INDEXES = [
    'CREATE INDEX IF NOT EXISTS bench_member_points ON profiles_member (tenant_id, points DESC, id)',
    'CREATE INDEX IF NOT EXISTS bench_member_first_seen ON profiles_member (tenant_id, first_seen_at DESC, id)',
]


def prepare_environment(args) -> None:
    from cryptography.fernet import Fernet

    os.environ.update({
        "DATABASE_URL": with_db(args.app_url, args.database),
        "MIGRATION_DATABASE_URL": with_db(args.owner_url, args.database),
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "testserver",
        "SECURE_SSL_REDIRECT": "0",
        "WECHAT_SANDBOX": "0",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    })
    for name in ("REDIS_URL", "TEST_DATABASE_NAME"):
        os.environ.pop(name, None)


def owner_sql(args, *statements: str, database: str | None = None) -> None:
    import psycopg

    url = with_db(args.owner_url, database) if database else args.owner_url
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def create_database(args) -> None:
    owner_sql(args, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)', f'CREATE DATABASE "{args.database}"')
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, check=True,
                   env=os.environ, timeout=600)


def generate(tenant, members: int, phone_share: float = 0.7) -> None:
    """Members in one INSERT … SELECT; RLS checks every row against the tenant in context."""
    from django.db import connection

    from profiles.member_list import phone_digest
    from tenants.context import tenant_context

    names = "ARRAY[" + ", ".join(f"'{n}'" for n in NICKNAMES) + "]"
    # One real digest stands in for all: exact-phone search then hits an index like in production.
    digest = phone_digest("13800001234")
    with tenant_context(tenant), connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO profiles_member (tenant_id, openid, unionid, nickname, avatar_url, gender, city, phone,
                phone_masked, phone_digest, tier, points, consent_marketing, consent_marketing_at,
                consent_profiling, consent_profiling_at, first_seen_at, last_seen_at, erased_at, birthday)
            SELECT %s, 'o' || substr(md5(i::text), 1, 27), '', ({names})[1 + i %% 20] || (i %% 997)::text, '',
                i %% 3, '上海', '',
                CASE WHEN r1 < %s THEN '13' || (i %% 10)::text || '****' || lpad((i %% 10000)::text, 4, '0')
                     ELSE '' END,
                CASE WHEN i %% 10000 = 1234 THEN %s ELSE '' END,
                (ARRAY['', '', '', 'silver', 'silver', 'gold'])[1 + (i * 7) %% 6],
                floor(power(r2, 3) * 20000)::bigint,
                r3 < 0.6, NULL, r3 < 0.9, NULL,
                now() - (365 + r4 * 365) * interval '1 day',
                CASE WHEN r5 < 0.1 THEN NULL ELSE now() - r4 * 365 * interval '1 day' END,
                NULL, NULL
            FROM (SELECT i, random() r1, random() r2, random() r3, random() r4, random() r5
                  FROM generate_series(1, %s) AS i) AS g
            """,  # noqa: S608 - the names are constants
            [tenant.pk, phone_share, digest, members],
        )
        cursor.execute("INSERT INTO profiles_tag (tenant_id, name, created_at) VALUES (%s, 'VIP', now()), "
                       "(%s, '新客', now()), (%s, '门店A', now())", [tenant.pk] * 3)
        cursor.execute(
            "INSERT INTO profiles_membertag (tenant_id, member_id, tag_id, created_at) "
            "SELECT %s, m.id, t.id, now() FROM profiles_member m, profiles_tag t "
            "WHERE m.tenant_id = %s AND t.tenant_id = %s AND t.name = 'VIP' AND m.id %% 10 = 3",
            [tenant.pk, tenant.pk, tenant.pk])


def scenarios(tenant) -> list[tuple[str, dict, int]]:
    """(label, query, depth): depth > 0 means start that many rows into the order."""
    from profiles.models import Tag
    from tenants.context import tenant_context

    with tenant_context(tenant):
        vip = Tag.objects.get(name="VIP").pk
    half_year_ago = datetime.datetime.now(datetime.UTC).date() - datetime.timedelta(days=180)
    return [
        ("last seen, page 1", {}, 0),
        ("last seen, 500k deep", {}, 500_000),
        ("last seen oldest first, 500k deep", {"sort": "last_seen"}, 500_000),
        ("points, page 1", {"sort": "-points"}, 0),
        ("points, 500k deep", {"sort": "-points"}, 500_000),
        ("first seen, 500k deep", {"sort": "-first_seen"}, 500_000),
        ("tier=gold, page 1", {"tier": "gold"}, 0),
        ("tier=gold, 100k deep", {"tier": "gold"}, 100_000),
        ("tag VIP, page 1", {"tag": vip}, 0),
        ("tag VIP + marketing=yes, 50k deep", {"tag": vip, "marketing": "yes"}, 50_000),
        ("seen in 7 days + marketing=yes", {"seen_within_days": 7, "marketing": "yes"}, 0),
        ("seen before 180 days ago, by points", {"seen_before": half_year_ago.isoformat(), "sort": "-points"}, 0),
        ("nickname prefix 小明", {"q": "小明"}, 0),
        ("nickname contains 梅", {"q": "梅", "search": "nickname_contains"}, 0),
        # Found by nobody: the page cannot stop early after 51 matching rows.
        ("nickname prefix, no match (Zed)", {"q": "Zed"}, 0),
        # ~400 and ~5,500 of the million (小明99…, tom1…): the planner must not walk the list's order.
        ("nickname prefix, few (小明99)", {"q": "小明99"}, 0),
        ("nickname prefix, 0.5 % (tom1)", {"q": "tom1"}, 0),
        # No index can find a substring under row-level security: the page reads every member.
        ("nickname contains, no match (Zed)", {"q": "Zed", "search": "nickname_contains"}, 0),
        ("phone last 4 (1234)", {"q": "1234"}, 0),
        ("phone full number", {"q": "13800001234"}, 0),
        ("openid exact", {"q": "o" + "c4ca4238a0b923820dcc509a6f75849b"[:27]}, 0),
    ]


def cursor_at(tenant, query: dict, depth: int) -> str:
    from django.http import QueryDict

    from profiles import member_list
    from profiles.console_views import _filter_form
    from tenants.context import tenant_context

    with tenant_context(tenant):
        filters = _filter_form(QueryDict(urlencode(query))).filters()
        sort = member_list.SORTS[filters.sort]
        rows = member_list._section_query(member_list.filtered_members(filters), sort, 0, None, False)
        member = rows[depth - 1: depth].first()
        return member_list._cursor_of(member, sort).encode() if member else ""


def measure(client, url: str, runs: int, requests: int) -> tuple[float, float, int]:
    medians, p95s = [], []
    rows = 0
    for _ in range(2):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        rows = response.content.count(b"<tr data-member=")
    for _ in range(runs):
        times = []
        for _ in range(requests):
            start = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200
        times.sort()
        medians.append(statistics.median(times))
        p95s.append(times[min(len(times) - 1, int(round(0.95 * len(times))) - 1)])
    return statistics.median(medians), statistics.median(p95s), rows


def run_all(args, tenant, client, label: str) -> list[tuple]:
    results = []
    base = f"/console/{tenant.slug}/members/"
    print(f"\n{label}: {args.members:,} members; median / p95 over {args.runs} runs × {args.requests} requests")
    print(f"{'scenario':<40} {'rows':>5} {'median ms':>10} {'p95 ms':>8}  target {TARGET_MS:.0f} ms")
    for name, query, depth in scenarios(tenant):
        query = dict(query)
        if depth:
            query["after"] = cursor_at(tenant, query, depth)
        url = f"{base}?{urlencode(query)}" if query else base
        median, p95, rows = measure(client, url, args.runs, args.requests)
        verdict = "ok" if p95 < TARGET_MS else "SLOW"
        print(f"{name:<40} {rows:>5} {median:>10.1f} {p95:>8.1f}  {verdict}", flush=True)
        results.append((name, rows, median, p95))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--database", default="jingzhun_bench_members")
    parser.add_argument("--owner-url", default=os.environ.get("MIGRATION_DATABASE_URL") or DEFAULT_OWNER)
    parser.add_argument("--app-url", default=os.environ.get("DATABASE_URL") or DEFAULT_APP)
    parser.add_argument("--extra-indexes", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the database for another look")
    args = parser.parse_args()
    if not args.owner_url.startswith("postgres"):
        parser.error("needs PostgreSQL: set MIGRATION_DATABASE_URL / DATABASE_URL or pass --owner-url/--app-url")

    prepare_environment(args)
    sys.path.insert(0, str(ROOT))
    started = time.perf_counter()
    create_database(args)
    try:
        import django

        django.setup()
        from django.test import Client

        from tenants import actions

        tenant = actions.create_tenant(slug="bench", name="Bench")
        twin = actions.create_tenant(slug="bench-twin", name="Bench twin")
        owner = actions.create_staff(tenant, username="bench-owner", role="owner",
                                     password=secrets.token_urlsafe(16)).user
        t0 = time.perf_counter()
        generate(tenant, args.members)
        generate(twin, max(1, args.members // 20))
        owner_sql(args, "ANALYZE", database=args.database)
        print(f"generated {args.members:,} + {args.members // 20:,} members in {time.perf_counter() - t0:.1f} s")
        client = Client()
        client.force_login(owner)
        run_all(args, tenant, client, "indexes of the profiles migrations")
        if args.extra_indexes:
            owner_sql(args, *EXTRA_INDEXES, "ANALYZE profiles_member", database=args.database)
            run_all(args, tenant, client, "plus (tenant, -points, id) and (tenant, -first_seen_at, id)")
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            owner_sql(args, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
