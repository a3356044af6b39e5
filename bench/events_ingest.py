"""Event ingestion through the API against the raw PostgreSQL COPY ceiling.

    .venv/bin/python bench/events_ingest.py [--clients 4] [--seconds 10] [--repeats 3] [--members 2000]

Creates a fresh database (``jingzhun_bench`` on the server of ``MIGRATION_DATABASE_URL``, default the
local CI cluster), migrates it as the owner role, adds one tenant with N members and items, starts
gunicorn (2 sync workers, ``config.wsgi``, DEBUG off) as the RLS-bound app role, and runs C client
processes posting batches of 500 valid events (fresh event_ids, a member token per batch, rotating
over the members) with keep-alive for D seconds. Then it COPYs the same number of rows, pre-rendered,
into an indexed copy of the events table: the ceiling. Repeats R times and prints medians.
Stops by itself: every wait has a deadline and gunicorn is terminated on the way out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import io
import json
import multiprocessing as mp
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import free_port, with_db

ROOT = Path(__file__).resolve().parent.parent
BATCH = 500
KINDS = ["view"] * 6 + ["click"] * 2 + ["add_to_cart", "share"]


def prepare_environment(args) -> dict[str, str]:
    from cryptography.fernet import Fernet

    owner = with_db(args.owner_url, args.database)
    app = with_db(args.app_url, args.database)
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": app,
        "MIGRATION_DATABASE_URL": owner,
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "WECHAT_SANDBOX": "0",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    })
    env.pop("REDIS_URL", None)
    env.pop("TEST_DATABASE_NAME", None)
    return env


def create_database(args) -> None:
    import psycopg

    with psycopg.connect(args.owner_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{args.database}"')


def drop_database(args) -> None:
    import psycopg

    with psycopg.connect(args.owner_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')


def migrate(env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env,
                   check=True, timeout=600)


def seed(args) -> tuple[int, list[str], list[str], list[int], list[int]]:
    """Tenant, members, items (in this process, as the app role): tenant id, tokens, skus, member and item ids."""
    import django

    django.setup()
    from catalog.models import Category, Item
    from profiles import tokens
    from profiles.models import Member
    from tenants import actions
    from tenants.context import tenant_context

    tenant = actions.create_tenant(slug="bench", name="Bench", appid="wxbe000000000000b1", app_secret=secrets.token_hex(16))
    with tenant_context(tenant):
        category = Category.objects.create(name="Bench")
        skus = [f"SKU-{i:05d}" for i in range(args.items)]
        Item.objects.bulk_create([Item(sku=s, name=s, category=category, price_fen=1000 + i)
                                  for i, s in enumerate(skus)])
        Member.objects.bulk_create([Member(openid=f"o_bench_{i:06d}") for i in range(args.members)],
                                   batch_size=1000)
        ids = list(Member.objects.order_by("pk").values_list("pk", flat=True))
        item_ids = list(Item.objects.values_list("pk", flat=True))
    from django.db import connection

    connection.close()
    return tenant.pk, [tokens.issue(tenant.pk, pk, tokens.ACCESS) for pk in ids], skus, ids, item_ids


def analyze(owner_url: str) -> None:
    """A live database has statistics; a freshly seeded one must not be planned without them."""
    import psycopg

    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute("ANALYZE")


def start_gunicorn(env: dict[str, str], port: int, workers: int) -> subprocess.Popen:
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    return subprocess.Popen(
        [gunicorn, "config.wsgi", "-w", str(workers), "-b", f"127.0.0.1:{port}", "--keep-alive", "30",
         "--log-level", "warning", "--timeout", "60"],
        cwd=ROOT, env=env, start_new_session=True,
    )


def wait_ready(port: int, token: str, deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/api/v1/me", headers={"Authorization": f"Bearer {token}"})
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return
            raise SystemExit(f"gunicorn answers {status} to /api/v1/me")
        except OSError:
            time.sleep(0.3)
    raise SystemExit("gunicorn did not come up")


# --- clients ------------------------------------------------------------------------------------------


def _templates(skus: list[str], seed_value: int) -> list[str]:
    import random

    rng = random.Random(seed_value)
    out = []
    for i in range(BATCH):
        kind = "purchase" if i % 50 == 0 else rng.choice(KINDS)
        sku = rng.choice(skus)
        props = ({"amount_fen": rng.randrange(500, 50000), "items": [{"sku": sku, "qty": 1}]}
                 if kind == "purchase" else {"page": f"pages/item?id={sku}", "src": rng.choice(["feed", "search"])})
        event = {"event_id": "@ID@", "kind": kind, "ts": 0, "sku": sku, "props": props}
        text = json.dumps(event, separators=(",", ":")).replace("%", "%%")
        out.append(text.replace('"@ID@"', '"%s"').replace('"ts":0', '"ts":%d'))
    return out


def client(index: int, port: int, tokens: list[str], skus: list[str], start_at: float, seconds: float,
           results: mp.Queue) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    templates = _templates(skus, index)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    run = secrets.token_hex(3)
    latencies: list[float] = []
    accepted = duplicates = rejected = errors = 0
    n = 0
    while time.time() < start_at:
        time.sleep(0.005)
    deadline = start_at + seconds
    while time.time() < deadline:
        ts = int(time.time() * 1000)
        prefix = f"{run}-{index}-{n}"
        body = ('{"events":[' + ",".join(t % (f"{prefix}-{i}", ts) for i, t in enumerate(templates)) + "]}").encode()
        token = tokens[n % len(tokens)]
        n += 1
        started = time.perf_counter()
        try:
            conn.request("POST", "/api/v1/events", body, {"Authorization": f"Bearer {token}",
                                                         "Content-Type": "application/json"})
            response = conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        latencies.append(time.perf_counter() - started)
        if response.status != 200:
            errors += 1
            continue
        answer = json.loads(payload)
        accepted += answer["accepted"]
        duplicates += answer["duplicates"]
        rejected += len(answer["rejected"])
    conn.close()
    results.put({"accepted": accepted, "duplicates": duplicates, "rejected": rejected, "errors": errors,
                 "latencies": latencies})


def api_round(port: int, tokens: list[str], skus: list[str], clients: int, seconds: float) -> dict:
    ctx = mp.get_context("fork")
    results: mp.Queue = ctx.Queue()
    start_at = time.time() + 0.5
    procs = [ctx.Process(target=client, args=(i, port, tokens[i::clients], skus, start_at, seconds, results))
             for i in range(clients)]
    for proc in procs:
        proc.start()
    collected = [results.get(timeout=seconds + 60) for _ in procs]
    for proc in procs:
        proc.join(timeout=10)
    latencies = sorted(x for r in collected for x in r["latencies"])
    total = {k: sum(r[k] for r in collected) for k in ("accepted", "duplicates", "rejected", "errors")}
    total["batches"] = len(latencies)
    total["events_per_s"] = total["accepted"] / seconds
    total["p50_ms"] = 1000 * latencies[len(latencies) // 2] if latencies else float("nan")
    total["p99_ms"] = 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else float("nan")
    return total


# --- COPY ceiling ---------------------------------------------------------------------------------------


def copy_ceiling(owner_url: str, tenant_id: int, member_ids: list[int], item_ids: list[int], rows: int) -> float:
    """Rows per second COPYing ``rows`` pre-rendered event rows into an indexed copy of the table."""
    import random

    import psycopg

    rng = random.Random(rows)
    now = dt.datetime.now(dt.UTC)
    buffer = io.StringIO()
    run = secrets.token_hex(4)
    for i in range(rows):
        ts = (now - dt.timedelta(seconds=rng.randrange(0, 3600))).isoformat()
        props = json.dumps({"page": f"pages/item?id={i % 997}", "src": "feed"}, separators=(",", ":"))
        buffer.write(f"{tenant_id}\t{rng.choice(member_ids)}\t{run}-{i}\tview\t{rng.choice(item_ids)}\t\\N\t"
                     f"{ts}\t{props}\t{now.isoformat()}\n")
    data = buffer.getvalue()
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_event_copy")
        conn.execute("CREATE TABLE bench_event_copy (LIKE profiles_event INCLUDING DEFAULTS INCLUDING IDENTITY "
                     "INCLUDING INDEXES INCLUDING CONSTRAINTS)")
        started = time.perf_counter()
        with conn.transaction(), conn.cursor() as cursor:
            with cursor.copy("COPY bench_event_copy (tenant_id, member_id, event_id, kind, item_id, amount_fen, "
                             "ts, props, received_at) FROM STDIN") as copy:
                for start in range(0, len(data), 1 << 20):
                    copy.write(data[start:start + (1 << 20)])
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE bench_event_copy")
    return rows / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database", default="jingzhun_bench")
    parser.add_argument("--owner-url", default=os.environ.get(
        "MIGRATION_DATABASE_URL", "postgres://jingzhun_owner@127.0.0.1:5432/jingzhun"))
    parser.add_argument("--app-url", default=os.environ.get(
        "DATABASE_URL", "postgres://jingzhun_app@127.0.0.1:5432/jingzhun"))
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    if not args.owner_url.startswith("postgres"):
        raise SystemExit("needs PostgreSQL: set MIGRATION_DATABASE_URL / DATABASE_URL or pass --owner-url/--app-url")

    env = prepare_environment(args)
    owner_bench = env["MIGRATION_DATABASE_URL"]
    print(f"# events_ingest {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs; "
          f"{args.clients} clients x {args.seconds:g}s x {args.repeats}, batches of {BATCH}, "
          f"{args.members} members, {args.items} items, gunicorn {args.workers} sync workers", flush=True)
    create_database(args)
    server = None
    try:
        migrate(env)
        os.environ.update(env)
        sys.path.insert(0, str(ROOT))
        tenant_id, member_tokens, skus, member_ids, item_ids = seed(args)
        analyze(owner_bench)
        port = free_port()
        server = start_gunicorn(env, port, args.workers)
        wait_ready(port, member_tokens[0])
        api_round(port, member_tokens, skus, args.clients, 2)  # warm-up: connections, imports, caches
        rounds = []
        for r in range(args.repeats):
            result = api_round(port, member_tokens, skus, args.clients, args.seconds)
            ceiling = copy_ceiling(owner_bench, tenant_id, member_ids, item_ids, max(result["accepted"], 50_000))
            result["copy_rows_per_s"] = ceiling
            rounds.append(result)
            print(f"round {r + 1}: API {result['events_per_s']:,.0f} events/s ({result['batches']} batches, "
                  f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, duplicates {result['duplicates']}, "
                  f"rejected {result['rejected']}, errors {result['errors']}); COPY ceiling {ceiling:,.0f} rows/s",
                  flush=True)
        api = statistics.median(r["events_per_s"] for r in rounds)
        ceiling = statistics.median(r["copy_rows_per_s"] for r in rounds)
        print(f"median: API {api:,.0f} events/s, p50 {statistics.median(r['p50_ms'] for r in rounds):.1f} ms, "
              f"p99 {statistics.median(r['p99_ms'] for r in rounds):.1f} ms; COPY ceiling {ceiling:,.0f} rows/s; "
              f"API/COPY {api / ceiling:.2f}")
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)
        if not args.keep_db:
            drop_database(args)


if __name__ == "__main__":
    main()
