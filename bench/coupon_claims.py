"""Coupon claims through the API against the raw PostgreSQL ceiling, and a 100,000-member bulk grant.

    .venv/bin/python bench/coupon_claims.py [--clients 32] [--seconds 10] [--repeats 3] [--workers 4] [--threads 8]
                                            [--only claims|grant] [--claim-path batched|alone]

Creates a fresh database (``jingzhun_bench_coupons`` on the server of ``MIGRATION_DATABASE_URL``),
migrates it as the owner, seeds one tenant with 100,000 members and a 100,000-stock template
(per-member limit 1), starts the API server (granian, 4 workers x 8 threads, DEBUG off; ``--server
gunicorn`` for gunicorn) as the RLS-bound app role (self-claims committed in batches through Redis, or
with ``--claim-path alone`` each in its own transaction), and runs
C concurrent clients (threads in 4 processes, keep-alive), each claiming for its own members with an
``Idempotency-Key`` for D seconds. In the same round it measures the raw ceiling: the bare
conditional ``UPDATE … issued = issued + 1 WHERE issued < stock`` + ``INSERT`` of the coupon from 8
connections, one transaction per claim (with the RLS setting, as the app role); the batches' database
side alone (``decide_batch`` on batches of 32 from 2 threads, no HTTP, no Redis); and the no-work HTTP
ceiling (the same clients and URL with an empty token: a 401 before any database work). Then a sell-out
round: the clients race for a 1,000-stock template, and the database must hold exactly 1,000.
Last, R bulk grants of one coupon to all 100,000 members (``start_grant_job`` + ``run_grant_job``,
chunks of 10,000), each of a fresh template, alternating with their own ceiling: the bare
``INSERT … SELECT`` of the same coupon rows from the members table, 10,000 per transaction (no
counters, no idempotency, no stock, no progress). Every count is checked against the database: any
oversell, or a member holding two of one template, fails the run. The load average is printed with
every round: on a shared machine, the ratios to the ceilings are the figures to compare.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import multiprocessing as mp
import os
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from harness import CpuMeter, LeanHTTP, cpu_text, free_port, with_db

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = 4


def prepare_environment(args) -> dict[str, str]:
    from cryptography.fernet import Fernet

    env = dict(os.environ)
    env.update({
        "DATABASE_URL": with_db(args.app_url, args.database),
        "MIGRATION_DATABASE_URL": with_db(args.owner_url, args.database),
        "DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(48), "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "127.0.0.1", "SECURE_SSL_REDIRECT": "0", "WECHAT_SANDBOX": "0", "LOG_LEVEL": "ERROR",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    })
    env.pop("REDIS_URL", None)
    env.pop("TEST_DATABASE_NAME", None)
    return env


def server_environment(args, env: dict[str, str]) -> dict[str, str]:
    """The API server's: batched claims talk to Redis (a database of its own, emptied first)."""
    if args.claim_path == "alone":
        return {**env, "CLAIM_BATCHING": "0"}
    import redis

    redis.Redis.from_url(args.redis_url).flushdb()
    return {**env, "CLAIM_BATCHING": "1", "REDIS_URL": args.redis_url}


def _admin(args, sql: str) -> None:
    import psycopg

    # The owner may not terminate the app role's sessions (FORCE needs that): after a round, give
    # the server's and the clients' connections a moment to close instead.
    for attempt in range(20):
        try:
            with psycopg.connect(args.owner_url, autocommit=True) as conn:
                conn.execute(sql)
            return
        except psycopg.errors.InsufficientPrivilege:
            if attempt == 19:
                raise
            time.sleep(0.5)


def seed(members: int, repeats: int) -> dict:
    import django

    django.setup()
    from campaigns import actions
    from profiles.models import Member
    from tenants import actions as tenant_actions
    from tenants.context import tenant_context

    tenant = tenant_actions.create_tenant(slug="bench", name="Bench", appid="wxbe000000000000c1",
                                          app_secret=secrets.token_hex(16))
    with tenant_context(tenant):
        for start in range(0, members, 20_000):
            Member.objects.bulk_create([Member(openid=f"o_bench_{i:07d}")
                                        for i in range(start, min(start + 20_000, members))], batch_size=5000)
        ids = list(Member.objects.order_by("pk").values_list("pk", flat=True))

    def template(name: str, stock: int | None, limit: int = 1) -> int:
        return actions.create_coupon_template(tenant, name=name, kind="instant_off", value=500, stock=stock,
                                              per_member_limit=limit, valid_days=30, activate=True).pk

    from django.db import connection

    out = {"tenant_id": tenant.pk, "member_ids": ids, "flash": template("秒杀 100000", 100_000),
           "sellout": template("秒杀 1000", 1_000), "ceiling": template("ceiling", 10_000_000, 0),
           "batch_ceiling": template("batch ceiling", 10_000_000, 0),
           "bulk": [template(f"全员礼 {r + 1}", None) for r in range(repeats)],
           "bulk_ceiling": [template(f"ceiling grant {r + 1}", None, 0) for r in range(repeats)]}
    connection.close()
    return out


def start_server(env: dict[str, str], port: int, server: str, workers: int, threads: int = 1) -> subprocess.Popen:
    """gunicorn: sync workers with ``threads`` 1, else gthread workers (which, unlike sync, keep
    connections alive). granian: ``workers`` processes of ``threads`` blocking threads each."""
    binary = str(Path(sys.executable).with_name(server))
    if server == "granian":
        command = [binary, "--interface", "wsgi", "--workers", str(workers), "--blocking-threads", str(threads),
                   "--host", "127.0.0.1", "--port", str(port), "--backlog", "256", "--log-level", "warning",
                   "--no-ws", "config.wsgi:application"]
    else:
        kind = ["-k", "gthread", "--threads", str(threads)] if threads > 1 else []
        command = [binary, "config.wsgi", *kind, "-w", str(workers), "-b", f"127.0.0.1:{port}", "--keep-alive", "30",
                   "--log-level", "warning", "--timeout", "60", "--backlog", "256"]
    return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)


def wait_ready(port: int, token: str, deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/api/v1/coupons", headers={"Authorization": f"Bearer {token}"})
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return
            raise SystemExit(f"the server answers {status} to /api/v1/coupons")
        except OSError:
            time.sleep(0.3)
    raise SystemExit("the server did not come up")


# --- API clients: threads in a few processes (32 processes would starve 2 cores) ---------------------


def _client_thread(port, template_id, tokens, start_at, deadline, out, lock, stop_on_409):
    conn = LeanHTTP(port)
    counts = {"201": 0, "409": 0, "other": 0}
    latencies = []
    run = secrets.token_hex(3)
    path = f"/api/v1/coupons/{template_id}/claim"
    while time.time() < start_at:
        time.sleep(0.002)
    for n, token in enumerate(tokens):
        if time.time() >= deadline:
            break
        started = time.perf_counter()
        try:
            status = conn.request("POST", path, {"Authorization": f"Bearer {token}", "Idempotency-Key": f"{run}-{n}",
                                                 "Content-Type": "application/json"})
        except OSError:
            counts["other"] += 1
            continue
        latencies.append(time.perf_counter() - started)
        key = str(status) if status in (201, 409) else "other"
        counts[key] += 1
        if stop_on_409 and status == 409:
            break  # fresh members with limit 1: a 409 can only mean sold out
    conn.close()
    with lock:
        for k, v in counts.items():
            out[k] = out.get(k, 0) + v
        out.setdefault("latencies", []).extend(latencies)


def _client_process(port, template_id, token_lists, start_at, seconds, results, stop_on_409):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out: dict = {}
    lock = threading.Lock()
    threads = [threading.Thread(target=_client_thread,
                                args=(port, template_id, tokens, start_at, start_at + seconds, out, lock,
                                      stop_on_409))
               for tokens in token_lists]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out["cpu_s"] = time.process_time()
    results.put(out)


def api_round(port: int, template_id: int, tokens: list[list[str]], seconds: float,
              stop_on_409: bool = False, meter: CpuMeter | None = None) -> dict:
    ctx = mp.get_context("fork")
    results: mp.Queue = ctx.Queue()
    start_at = time.time() + 0.5
    procs = [ctx.Process(target=_client_process, args=(port, template_id, tokens[p::PROCESSES], start_at, seconds,
                                                       results, stop_on_409)) for p in range(PROCESSES)]
    before = meter.read() if meter else None
    for proc in procs:
        proc.start()
    collected = [results.get(timeout=seconds + 120) for _ in procs]
    for proc in procs:
        proc.join(timeout=10)
    spent = CpuMeter.spent(before, meter.read()) if meter else {}
    spent["clients"] = sum(r.pop("cpu_s", 0.0) for r in collected)
    latencies = sorted(x for r in collected for x in r.get("latencies", []))
    total = {k: sum(r.get(k, 0) for r in collected) for k in ("201", "409", "other")}
    total["claims_per_s"] = total["201"] / seconds
    answered = total["201"] + total["409"] + total["other"]  # the no-work round's 401s are "other"
    total["cpu_ms"] = {k: 1000 * v / max(answered, 1) for k, v in spent.items()}
    total["p50_ms"] = 1000 * latencies[len(latencies) // 2] if latencies else float("nan")
    total["p99_ms"] = 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0
    return total


# --- the raw ceiling -------------------------------------------------------------------------------


def _claims_per_second(threads: int, seconds: float, claim: Callable[[int, Callable[[], float]], int]) -> float:
    """``claim(i, start)`` in ``threads`` threads, each counting its claims from when ``start()`` (called
    once it is set up) returns until the deadline it returns; the claims per second of them all."""
    done = [0] * threads
    start_at = time.time() + 0.3

    def start() -> float:
        while time.time() < start_at:
            time.sleep(0.001)
        return start_at + seconds

    def run(i: int) -> None:
        done[i] = claim(i, start)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return sum(done) / seconds


def raw_ceiling(app_url: str, tenant_id: int, template_id: int, member_ids: list[int], seconds: float,
                connections: int = 8) -> float:
    """Claims/s of the bare conditional UPDATE + INSERT, one transaction each, as the RLS-bound role."""
    import psycopg

    now = dt.datetime.now(dt.UTC)

    def claim(i: int, start: Callable[[], float]) -> int:
        n = 0
        with psycopg.connect(app_url) as conn:
            deadline = start()
            while time.time() < deadline:
                with conn.transaction():
                    conn.execute("SELECT set_config('app.tenant_id', %s, true)", [str(tenant_id)])
                    cur = conn.execute("UPDATE campaigns_coupontemplate SET issued = issued + 1 "
                                       "WHERE id = %s AND (stock IS NULL OR issued < stock)", [template_id])
                    if cur.rowcount != 1:
                        raise RuntimeError("ceiling template sold out")
                    conn.execute(
                        "INSERT INTO campaigns_coupon (tenant_id, template_id, member_id, code, state, claimed_at, "
                        "valid_from, valid_until, order_ref, channel, campaign_ref, idempotency_key) "
                        "VALUES (%s, %s, %s, %s, 'unused', %s, %s, %s, '', 'self_claim', '', '')",
                        [tenant_id, template_id, member_ids[(i * 100_003 + n) % len(member_ids)],
                         secrets.token_hex(8).upper(), now, now, now + dt.timedelta(days=30)])
                n += 1
        return n

    return _claims_per_second(connections, seconds, claim)


def batch_ceiling(tenant_id: int, template_id: int, member_ids: list[int], seconds: float, threads: int = 2,
                  size: int = 32) -> float:
    """Claims/s of the batches' database side alone: ``decide_batch`` on batches of ``size`` claims from
    ``threads`` threads (two batches in flight, as the two slots allow), no HTTP, no Redis."""
    import json

    from django.db import connection
    from django.utils import timezone

    from campaigns.actions.claim_batches import claim_item, decide_batch
    from campaigns.models import new_coupon_code

    def claim(i: int, start: Callable[[], float]) -> int:
        n = 0
        deadline = start()
        try:
            while time.time() < deadline:
                now = timezone.now()
                batch = [claim_item(secrets.token_hex(8), member_ids[(i * 100_003 + n + k) % len(member_ids)],
                                    key="", code=new_coupon_code(), now=now).encode() for k in range(size)]
                answers = decide_batch(tenant_id, template_id, batch)
                if any(json.loads(a)["s"] != "ok" for a in answers.values()):
                    raise RuntimeError("a batch-ceiling claim was not issued")
                n += size
        finally:
            connection.close()
        return n

    return _claims_per_second(threads, seconds, claim)


def db_counts(app_url: str, tenant_id: int, template_id: int) -> tuple[int, int, int | None, int]:
    """(issued, coupons, stock, members holding more than one) for a template, read under RLS."""
    import psycopg

    with psycopg.connect(app_url) as conn, conn.transaction():
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", [str(tenant_id)])
        issued, stock = conn.execute("SELECT issued, stock FROM campaigns_coupontemplate WHERE id = %s",
                                     [template_id]).fetchone()
        coupons = conn.execute("SELECT count(*) FROM campaigns_coupon WHERE template_id = %s",
                               [template_id]).fetchone()[0]
        doubles = conn.execute("SELECT count(*) FROM (SELECT member_id FROM campaigns_coupon WHERE template_id = %s "
                               "GROUP BY member_id HAVING count(*) > 1) d", [template_id]).fetchone()[0]
    return issued, coupons, stock, doubles


def bulk_grant(tenant_id: int, template_id: int) -> tuple[float, dict]:
    from campaigns import actions
    from tenants import resolvers

    tenant = resolvers.tenant_by_id(tenant_id)
    started = time.perf_counter()
    job = actions.start_grant_job(tenant, template_id, actor=None, reason="bench: everyone")
    job = actions.run_grant_job(tenant, job.pk)
    elapsed = time.perf_counter() - started
    return elapsed, {"granted": job.granted, "total": job.total, "state": job.state}


def grant_ceiling(app_url: str, tenant_id: int, template_id: int, chunk: int = 10_000) -> float:
    """Seconds for the bare set-based insert of one coupon per member, ``chunk`` members a transaction."""
    import psycopg

    now = dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    with psycopg.connect(app_url) as conn:
        last = 0
        while True:
            with conn.transaction():
                conn.execute("SELECT set_config('app.tenant_id', %s, true)", [str(tenant_id)])
                row = conn.execute(
                    "WITH m AS (SELECT id FROM profiles_member WHERE tenant_id = %(t)s AND id > %(last)s "
                    "ORDER BY id LIMIT %(chunk)s), i AS (INSERT INTO campaigns_coupon (tenant_id, template_id, "
                    "member_id, code, state, claimed_at, valid_from, valid_until, order_ref, channel, campaign_ref, "
                    "idempotency_key) SELECT %(t)s, %(tpl)s, m.id, upper(substr(md5(random()::text), 1, 16)), "
                    "'unused', %(now)s, %(now)s, %(end)s, '', 'staff', '', 'ceiling-' || %(tpl)s FROM m RETURNING 1) "
                    "SELECT (SELECT count(*) FROM m), (SELECT max(id) FROM m), (SELECT count(*) FROM i)",
                    {"t": tenant_id, "tpl": template_id, "last": last, "chunk": chunk, "now": now,
                     "end": now + dt.timedelta(days=30)}).fetchone()
            if not row[0]:
                break
            last = row[1]
            if row[0] < chunk:
                break
    return time.perf_counter() - started


def vacuum_coupon_tables(args) -> None:
    """What autovacuum would have done by now (it is off on the CI machine's PostgreSQL).

    The raw-ceiling rounds update their template row thousands of times a second; the templates
    share one heap page, which without vacuum bloats with dead row versions that every later claim
    walks. A production server vacuums a 5-row table within a minute of that; each measured round
    starts from what it would find, and with statistics of the tables as they are now.
    """
    import psycopg

    with psycopg.connect(with_db(args.owner_url, args.database), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) campaigns_coupontemplate, campaigns_claimcounter, campaigns_coupon")


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def claims(args, port: int, app_url: str, seeded: dict, tokens_for, per_client: int,
           meter: CpuMeter | None = None) -> bool:
    """The API rounds against the raw ceiling, then the sell-out race; True when a count is wrong."""
    tenant_id = seeded["tenant_id"]
    budget = per_client // (args.repeats + 2)
    api_round(port, seeded["flash"], tokens_for(0, min(budget, 50)), 2)  # warm-up
    rounds = []
    for r in range(args.repeats):
        vacuum_coupon_tables(args)
        result = api_round(port, seeded["flash"], tokens_for((r + 1) * budget, budget), args.seconds, meter=meter)
        result["load"] = load()
        result["ceiling"] = raw_ceiling(app_url, tenant_id, seeded["ceiling"], seeded["member_ids"], args.seconds)
        result["batch_ceiling"] = batch_ceiling(tenant_id, seeded["batch_ceiling"], seeded["member_ids"],
                                                args.seconds / 2)
        # The same clients and server, the same URL with an empty bearer token: refused (401) by the
        # authentication before any database work. What HTTP, middleware, DRF and the harness cost on
        # their own on this machine right now.
        empty = [[""] * budget for _ in range(args.clients)]
        no_work = api_round(port, seeded["flash"], empty, args.seconds / 2, meter=meter)
        result["no_work"] = no_work["other"] / (args.seconds / 2)
        rounds.append(result)
        print(f"round {r + 1}: API {result['claims_per_s']:,.0f} claims/s ({result['201']} issued, "
              f"{result['409']} refused, {result['other']} other; p50 {result['p50_ms']:.1f} ms, "
              f"p99 {result['p99_ms']:.1f} ms); raw PostgreSQL ceiling {result['ceiling']:,.0f} claims/s; "
              f"ratio {result['claims_per_s'] / result['ceiling']:.2f}; batches' database side alone "
              f"{result['batch_ceiling']:,.0f} claims/s; no-work HTTP ceiling "
              f"{result['no_work']:,.0f} req/s; load {result['load']} / {load()}", flush=True)
        if meter is not None:
            print(f"  CPU ms per request: claim {cpu_text(result['cpu_ms'])}; no-work {cpu_text(no_work['cpu_ms'])}",
                  flush=True)
    issued, coupons, stock, doubles = db_counts(app_url, tenant_id, seeded["flash"])
    print(f"flash template: issued {issued}, coupons {coupons}, stock {stock}, members with two: {doubles}; "
          f"201 answers in the measured rounds: {sum(r['201'] for r in rounds)} (the rest: warm-up)")
    failed = issued != coupons or issued > stock or doubles != 0
    issued, coupons, _, _ = db_counts(app_url, tenant_id, seeded["batch_ceiling"])
    print(f"batch-ceiling template: issued {issued}, coupons {coupons}")
    failed |= issued != coupons

    # Until sold out: every client claims with fresh members until its first 409.
    sell = api_round(port, seeded["sellout"], tokens_for((args.repeats + 1) * budget, budget), 300,
                     stop_on_409=True)
    issued, coupons, stock, doubles = db_counts(app_url, tenant_id, seeded["sellout"])
    print(f"sell-out race: {sell['201']} answered 201, {sell['409']} answered 409; database: issued {issued}, "
          f"coupons {coupons} of stock {stock}, members with two: {doubles}")
    failed |= not (issued == coupons == stock == sell["201"]) or doubles != 0

    api = statistics.median(r["claims_per_s"] for r in rounds)
    ceiling = statistics.median(r["ceiling"] for r in rounds)
    batched = statistics.median(r["batch_ceiling"] for r in rounds)
    ratio = statistics.median(r["claims_per_s"] / r["ceiling"] for r in rounds)
    no_work = statistics.median(r["no_work"] for r in rounds)
    print(f"median: API {api:,.0f} claims/s, p50 {statistics.median(r['p50_ms'] for r in rounds):.1f} ms, "
          f"p99 {statistics.median(r['p99_ms'] for r in rounds):.1f} ms; raw ceiling {ceiling:,.0f} claims/s; "
          f"API/ceiling {ratio:.2f} (median of the rounds' ratios); batches' database side {batched:,.0f} claims/s "
          f"({batched / ceiling:.1f}x the raw ceiling); no-work HTTP ceiling {no_work:,.0f} req/s, "
          f"API/no-work {api / no_work:.2f}", flush=True)
    return failed


def grants(args, app_url: str, seeded: dict) -> bool:
    """Bulk grants to every member, each beside its bare-insert ceiling; True when a count is wrong."""
    tenant_id, failed, runs = seeded["tenant_id"], False, []
    for r, (template_id, ceiling_template_id) in enumerate(zip(seeded["bulk"], seeded["bulk_ceiling"],
                                                                strict=True)):
        before = load()
        elapsed, job = bulk_grant(tenant_id, template_id)
        issued, coupons, _, doubles = db_counts(app_url, tenant_id, template_id)
        ceiling = grant_ceiling(app_url, tenant_id, ceiling_template_id)
        _, ceiling_coupons, _, _ = db_counts(app_url, tenant_id, ceiling_template_id)
        runs.append((elapsed, ceiling))
        print(f"bulk grant {r + 1}: {job['granted']:,} of {job['total']:,} members in {elapsed:.2f} s "
              f"({job['granted'] / elapsed:,.0f}/s), state {job['state']}; database: {coupons:,} coupons, "
              f"issued {issued:,}, members with two: {doubles}; bare insert of {ceiling_coupons:,} coupons "
              f"{ceiling:.2f} s; grant/bare {elapsed / ceiling:.2f}; load {before} / {load()}", flush=True)
        failed |= not (coupons == issued == job["granted"] == job["total"]) or doubles != 0
    print(f"median: bulk grant {statistics.median(e for e, _ in runs):.2f} s, bare insert "
          f"{statistics.median(c for _, c in runs):.2f} s, grant/bare {statistics.median(e / c for e, c in runs):.2f}",
          flush=True)
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--server", choices=["granian", "gunicorn"], default="granian")
    parser.add_argument("--threads", type=int, default=8,
                        help="threads per worker (gunicorn: 1 means sync workers, more gthread workers)")
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--database", default="jingzhun_bench_coupons")
    parser.add_argument("--owner-url", default=os.environ.get(
        "MIGRATION_DATABASE_URL", "postgres://jingzhun_owner@127.0.0.1:5432/jingzhun"))
    parser.add_argument("--app-url", default=os.environ.get(
        "DATABASE_URL", "postgres://jingzhun_app@127.0.0.1:5432/jingzhun"))
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--claim-path", choices=["batched", "alone"], default="batched",
                        help="self-claims committed in batches through Redis (the default), or each alone")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14",
                        help="the Redis database batched claims use (emptied first)")
    parser.add_argument("--only", choices=["claims", "grant"], help="run one half of the benchmark")
    args = parser.parse_args()
    if not args.owner_url.startswith("postgres"):
        raise SystemExit("needs PostgreSQL: set MIGRATION_DATABASE_URL / DATABASE_URL or pass --owner-url/--app-url")

    env = prepare_environment(args)
    print(f"# coupon_claims {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs; {args.clients} "
          f"clients x {args.seconds:g}s x {args.repeats}; {args.server} {args.workers} workers x {args.threads} "
          f"threads; "
          f"{args.members} members; claims {args.claim_path}; load average {load()}", flush=True)
    _admin(args, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    _admin(args, f'CREATE DATABASE "{args.database}"')
    server = None
    failed = False
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env,
                       check=True, timeout=600)
        os.environ.update(env)
        sys.path.insert(0, str(ROOT))
        seeded = seed(args.members, args.repeats)
        import psycopg

        # VACUUM as well: 100,000 freshly inserted members would otherwise be vacuumed by autovacuum
        # in the middle of a measured round, which a shop's member table in steady state is not.
        with psycopg.connect(env["MIGRATION_DATABASE_URL"], autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE)")
        from profiles import tokens as member_tokens

        tenant_id, member_ids = seeded["tenant_id"], seeded["member_ids"]
        app_url = env["DATABASE_URL"]
        # Each client owns a disjoint slice of members; each claim is by a member who has none yet.
        per_client = len(member_ids) // args.clients

        def tokens_for(offset: int, count: int) -> list[list[str]]:
            return [[member_tokens.issue(tenant_id, m, member_tokens.ACCESS)
                     for m in member_ids[c * per_client + offset:c * per_client + offset + count]]
                    for c in range(args.clients)]

        if args.only != "grant":
            port = free_port()
            server = start_server(server_environment(args, env), port, args.server, args.workers, args.threads)
            wait_ready(port, member_tokens.issue(tenant_id, member_ids[0], member_tokens.ACCESS))
            meter = CpuMeter(server.pid, env["MIGRATION_DATABASE_URL"], args.database)
            failed |= claims(args, port, app_url, seeded, tokens_for, per_client, meter)
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=20)
            server = None
        if args.only != "claims":
            failed |= grants(args, app_url, seeded)
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)
        if "django" in sys.modules and os.environ.get("DJANGO_SETTINGS_MODULE"):
            from django.db import connections

            connections.close_all()
        if not args.keep_db:
            _admin(args, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    if failed:
        raise SystemExit("counts do not add up: see above")


if __name__ == "__main__":
    main()
