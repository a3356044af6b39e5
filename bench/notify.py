"""Verified WeChat Pay v3 notify callbacks per second through gunicorn on PostgreSQL, 10% duplicates.

    .venv/bin/python bench/notify.py [--clients 16] [--seconds 10] [--repeats 3] [--workers 4]

Creates a fresh database (``jingzhun_bench_notify`` on the server of ``MIGRATION_DATABASE_URL``),
migrates it as the owner, seeds one tenant with a WeChat Pay account (fresh RSA keys: merchant and
platform), a member and ``--orders`` unpaid orders, and starts gunicorn (sync workers, DEBUG off) as
the RLS-bound app role. Each round signs notifications exactly as WeChat does (AES-256-GCM resource,
RSA-SHA256 over timestamp/nonce/body; signed before the round so the clients only send), one per
fresh order plus 10% re-deliveries of ones already sent in the round (same body and id, fresh
signature), and C clients (threads in 4 processes, keep-alive) post them for D seconds.

The fulfilment (coupon, points, purchase event, ``order_paid``) goes to a throwaway Redis queue, as
in production (batched per worker process by ``payments.fulfilment``'s sender thread), and is
drained afterwards by the same function the workers run. Checked against the database at the end:
every order notified is paid exactly once (one ``paid`` transition, one purchase event), every
delivery is counted on its notification, nothing else moved.

Each round is followed by a no-work round on the same server (GET on the notify URL, answered 405
before any database or crypto work) as the ceiling of this machine at that moment; the ratio of the
two is the figure that survives the noise of a shared machine. Both print the CPU spent per request
by the gunicorn workers, by the benchmark database's PostgreSQL backends (from /proc) and by the
load generator.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import multiprocessing as mp
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from harness import CpuMeter, LeanHTTP, cpu_text, free_port, with_db

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = 4
DUPLICATE_SHARE = 0.10
MCHID = "1900009001"
APPID = "wxbe000000000000n1"
PUBLIC_KEY_ID = "PUB_KEY_ID_0114232134912410000000000000BNCH"


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
    # As in production, the fulfilment goes to the broker instead of running in the request.
    env["CELERY_BROKER_URL"] = args.broker
    env["CELERY_QUEUE"] = f"bench-notify-{secrets.token_hex(4)}"
    return env


def purge_queue(env: dict[str, str]) -> None:
    import redis

    client = redis.Redis.from_url(env["CELERY_BROKER_URL"])
    client.delete(env["CELERY_QUEUE"], f"_kombu.binding.{env['CELERY_QUEUE']}")


def drain_fulfilment(tenant_id: int) -> tuple[int, float]:
    """What the workers do with the queued fulfilments (and the scan with lost ones), run here."""
    from payments.fulfilment import fulfil
    from payments.models import Order
    from tenants import resolvers
    from tenants.context import tenant_context

    tenant = resolvers.tenant_by_id(tenant_id)
    with tenant_context(tenant):
        owed = list(Order.objects.filter(state="paid", fulfilled_at__isnull=True).values_list("pk", flat=True))
    started = time.perf_counter()
    applied = sum(fulfil(tenant, pk) for pk in owed)
    again = sum(fulfil(tenant, pk) for pk in owed[:200])  # a redelivered message changes nothing
    if again:
        raise SystemExit(f"{again} fulfilments applied twice")
    return applied, time.perf_counter() - started


def _admin(args, sql: str) -> None:
    import psycopg

    with psycopg.connect(args.owner_url, autocommit=True) as conn:
        conn.execute(sql)


def seed(orders: int) -> dict:
    import django

    django.setup()
    from django.db import connection
    from django.utils import timezone

    from catalog.models import Category, Item
    from payments.actions import new_out_trade_no
    from payments.models import Order, OrderLine
    from profiles.models import Member
    from tenants import actions as tenant_actions
    from tenants import resolvers
    from tenants.context import tenant_context
    from wechat.payv3 import generate_private_key_pem, public_key_pem_of

    platform_pem = generate_private_key_pem()
    apiv3_key = secrets.token_hex(16)
    tenant = tenant_actions.create_tenant(slug="bench", name="Bench", appid=APPID, app_secret=secrets.token_hex(16))
    tenant_actions.set_pay_account(tenant, mchid=MCHID, apiv3_key=apiv3_key,
                                   merchant_private_key=generate_private_key_pem(),
                                   merchant_cert_serial="3775B6A45ACD588826D15E583A95F5DD00000001",
                                   public_key_pem=public_key_pem_of(platform_pem), public_key_id=PUBLIC_KEY_ID)
    now = timezone.now()
    with tenant_context(tenant):
        member = Member.objects.create(openid="o_bench_payer")
        item = Item.objects.create(sku="LATTE", name="Latte", category=Category.objects.create(name="咖啡"),
                                   price_fen=2800)
        numbers = []
        for start in range(0, orders, 5000):
            batch = [Order(out_trade_no=new_out_trade_no(), client_order_id=f"bench-{i}", member=member,
                           state=Order.State.PAYING, description="Latte", subtotal_fen=2800, payable_fen=2800,
                           expires_at=now + dt.timedelta(days=1))
                     for i in range(start, min(start + 5000, orders))]
            Order.objects.bulk_create(batch)
            OrderLine.objects.bulk_create([
                OrderLine(order=o, item=item, sku="LATTE", name="Latte", category_id=item.category_id,
                          unit_price_fen=2800, qty=1, amount_fen=2800) for o in batch])
            numbers += [o.out_trade_no for o in batch]
    token = resolvers.pay_credentials_for(tenant).notify_token
    connection.close()
    return {"tenant_id": tenant.pk, "numbers": numbers, "platform_pem": platform_pem, "apiv3_key": apiv3_key,
            "token": token}


def start_gunicorn(env: dict[str, str], port: int, workers: int) -> subprocess.Popen:
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    return subprocess.Popen([gunicorn, "config.wsgi", "-w", str(workers), "-b", f"127.0.0.1:{port}",
                             "--keep-alive", "30", "--log-level", "warning", "--timeout", "60", "--backlog", "256"],
                            cwd=ROOT, env=env, start_new_session=True)


def wait_ready(port: int, path: str, deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path)
            status = conn.getresponse().status
            conn.close()
            if status == 405:  # the notify view is up (it takes POST only)
                return
            raise SystemExit(f"gunicorn answers {status} to GET {path}")
        except OSError:
            time.sleep(0.3)
    raise SystemExit("gunicorn did not come up")


# --- notifications, signed as WeChat signs them ------------------------------------------------------


def _resource(number: str, n: int) -> dict:
    return {
        "mchid": MCHID, "appid": APPID, "out_trade_no": number, "transaction_id": f"42000{n:023d}",
        "trade_type": "JSAPI", "trade_state": "SUCCESS", "trade_state_desc": "支付成功", "bank_type": "OTHERS",
        "attach": "", "success_time": dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).isoformat(timespec="seconds"),
        "payer": {"openid": "o_bench_payer"},
        "amount": {"total": 2800, "payer_total": 2800, "currency": "CNY", "payer_currency": "CNY"},
    }


def _sign_batch(job: tuple) -> list[tuple[bytes, bytes]]:
    """(header block, body) per delivery; for a duplicate the same body under a fresh signature."""
    platform_pem, apiv3_key, deliveries = job
    from wechat.notify import build_signed_notification, sign_notification_body

    out, bodies = [], {}
    for n, number, duplicate_of in deliveries:
        if duplicate_of is not None and duplicate_of in bodies:
            body = bodies[duplicate_of]
            headers = sign_notification_body(platform_pem, PUBLIC_KEY_ID, body)
        else:
            headers, body = build_signed_notification(platform_pem, PUBLIC_KEY_ID, apiv3_key, "TRANSACTION.SUCCESS",
                                                      _resource(number, n), "transaction", notify_id=f"EV-{n}")
            bodies[n] = body
        out.append((headers, body))
    return out


def prepare_round(seeded: dict, numbers: list[tuple[int, str]], clients: int) -> list[list[tuple[dict, bytes]]]:
    """Deliveries per client: its own fresh notifications with 10% re-deliveries of its earlier ones."""
    per_client = [numbers[c::clients] for c in range(clients)]
    jobs = []
    rng = random.Random(7)  # noqa: S311 - which deliveries repeat; not a secret
    for own in per_client:
        deliveries = []
        for i, (n, number) in enumerate(own):
            deliveries.append((n, number, None))
            if i and rng.random() < DUPLICATE_SHARE / (1 - DUPLICATE_SHARE):
                earlier_n, earlier_number = own[rng.randrange(i)]
                deliveries.append((earlier_n, earlier_number, earlier_n))
        jobs.append((seeded["platform_pem"], seeded["apiv3_key"], deliveries))
    with mp.get_context("fork").Pool(2) as pool:
        return pool.map(_sign_batch, jobs)


def _client_thread(port, path, deliveries, start_at, deadline, out, lock):
    """Posts its deliveries in order; a ``None`` delivery list means GET the path for the whole round."""
    conn = LeanHTTP(port)
    counts: dict[str, int] = {}
    latencies = []
    while time.time() < start_at:
        time.sleep(0.002)
    requests = deliveries if deliveries is not None else iter(lambda: (None, None), 0)
    for headers, body in requests:
        if time.time() >= deadline:
            break
        started = time.perf_counter()
        try:
            if body is None:
                status = conn.request("GET", path, {})
            else:
                status = conn.request("POST", path, headers, body)
        except OSError:
            counts["error"] = counts.get("error", 0) + 1
            continue
        latencies.append(time.perf_counter() - started)
        counts[str(status)] = counts.get(str(status), 0) + 1
    conn.close()
    with lock:
        for k, v in counts.items():
            out[k] = out.get(k, 0) + v
        out.setdefault("latencies", []).extend(latencies)


def _client_process(port, path, delivery_lists, start_at, seconds, results):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out: dict = {}
    lock = threading.Lock()
    threads = [threading.Thread(target=_client_thread, args=(port, path, d, start_at, start_at + seconds, out, lock))
               for d in delivery_lists]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out["cpu_s"] = time.process_time()
    results.put(out)


def notify_round(port: int, path: str, deliveries: list[list], seconds: float, meter: CpuMeter | None = None) -> dict:
    ctx = mp.get_context("fork")
    results: mp.Queue = ctx.Queue()
    start_at = time.time() + 0.5
    procs = [ctx.Process(target=_client_process, args=(port, path, deliveries[p::PROCESSES], start_at, seconds,
                                                       results)) for p in range(PROCESSES)]
    before = meter.read() if meter else None
    for proc in procs:
        proc.start()
    collected = [results.get(timeout=seconds + 120) for _ in procs]
    for proc in procs:
        proc.join(timeout=10)
    spent = CpuMeter.spent(before, meter.read()) if meter else {}
    spent["clients"] = sum(r.pop("cpu_s", 0.0) for r in collected)
    latencies = sorted(x for r in collected for x in r.get("latencies", []))
    statuses: dict[str, int] = {}
    for r in collected:
        for k, v in r.items():
            if k != "latencies":
                statuses[k] = statuses.get(k, 0) + v
    sent = sum(statuses.values())
    answered = statuses.get("204", 0) + statuses.get("405", 0)
    return {
        "statuses": statuses, "sent": sent, "per_s": answered / seconds,
        "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else float("nan"),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0,
        "cpu_ms": {k: 1000 * v / max(answered, 1) for k, v in spent.items()},
    }


def db_check(app_url: str, tenant_id: int) -> dict[str, int]:
    import psycopg

    with psycopg.connect(app_url) as conn, conn.transaction():
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", [str(tenant_id)])

        def one(sql: str) -> int:
            return conn.execute(sql).fetchone()[0]

        return {
            "notifications": one("SELECT count(*) FROM payments_paymentnotification"),
            "deliveries_counted": one("SELECT coalesce(sum(attempts), 0) FROM payments_paymentnotification"),
            "applied": one("SELECT count(*) FROM payments_paymentnotification WHERE outcome = 'applied'"),
            "flagged": one("SELECT count(*) FROM payments_paymentnotification WHERE outcome = 'flagged'"),
            "paid_orders": one("SELECT count(*) FROM payments_order WHERE state = 'paid'"),
            "paid_transitions": one("SELECT count(*) FROM payments_ordertransition WHERE to_state = 'paid'"),
            "double_paid": one("SELECT count(*) FROM (SELECT order_id FROM payments_ordertransition "
                               "WHERE to_state = 'paid' GROUP BY order_id HAVING count(*) > 1) d"),
            "purchase_events": one("SELECT count(*) FROM profiles_event WHERE kind = 'purchase'"),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rate-guess", type=int, default=800, help="notifications signed per second of a round")
    parser.add_argument("--database", default="jingzhun_bench_notify")
    parser.add_argument("--owner-url", default=os.environ.get(
        "MIGRATION_DATABASE_URL", "postgres://jingzhun_owner@127.0.0.1:5432/jingzhun"))
    parser.add_argument("--app-url", default=os.environ.get(
        "DATABASE_URL", "postgres://jingzhun_app@127.0.0.1:5432/jingzhun"))
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/7",
                        help="Redis for the fulfilment messages (a throwaway queue, deleted afterwards)")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    if not args.owner_url.startswith("postgres"):
        raise SystemExit("needs PostgreSQL: set MIGRATION_DATABASE_URL / DATABASE_URL or pass --owner-url/--app-url")

    per_round = int(args.rate_guess * args.seconds)
    orders = per_round * (args.repeats + 1) + 1000
    env = prepare_environment(args)
    print(f"# notify {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs; {args.clients} clients x "
          f"{args.seconds:g}s x {args.repeats}; gunicorn {args.workers} sync workers; {orders} orders; "
          f"{DUPLICATE_SHARE:.0%} duplicates", flush=True)
    _admin(args, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    _admin(args, f'CREATE DATABASE "{args.database}"')
    server = None
    failed = False
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env,
                       check=True, timeout=600)
        os.environ.update(env)
        sys.path.insert(0, str(ROOT))
        seeded = seed(orders)
        import psycopg

        with psycopg.connect(env["MIGRATION_DATABASE_URL"], autocommit=True) as conn:
            conn.execute("ANALYZE")
        path = f"/pay/wechat/v3/{seeded['token']}/"
        numbers = list(enumerate(seeded["numbers"]))
        port = free_port()
        server = start_gunicorn(env, port, args.workers)
        wait_ready(port, path)
        meter = CpuMeter(server.pid, env["MIGRATION_DATABASE_URL"], args.database)

        warm = prepare_round(seeded, numbers[:200], args.clients)
        notify_round(port, path, warm, 2)
        cursor, rounds, sent_total = 200, [], 0
        for r in range(args.repeats):
            batch = numbers[cursor:cursor + per_round]
            cursor += per_round
            deliveries = prepare_round(seeded, batch, args.clients)
            result = notify_round(port, path, deliveries, args.seconds, meter)
            # Same server, same clients, same moment: GET on the notify URL is answered 405 before any
            # database or crypto work — the ceiling of gunicorn + Django's middleware on this machine now.
            ceiling = notify_round(port, path, [None] * args.clients, args.seconds, meter)
            result["ceiling"] = ceiling["per_s"]
            rounds.append(result)
            print(f"round {r + 1}: {result['per_s']:,.0f} verified notifies/s (answers {result['statuses']}; "
                  f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms); no-work ceiling "
                  f"{result['ceiling']:,.0f} req/s, ratio {result['per_s'] / result['ceiling']:.2f}; load average "
                  f"{os.getloadavg()[0]:.1f}", flush=True)
            print(f"  CPU ms per request: notify {cpu_text(result['cpu_ms'])}; no-work {cpu_text(ceiling['cpu_ms'])}",
                  flush=True)
            if result["sent"] >= sum(len(d) for d in deliveries):
                print("  (the clients ran out of signed notifications: raise --rate-guess)", flush=True)
            failed |= set(result["statuses"]) != {"204"}
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
        server = None

        applied, elapsed = drain_fulfilment(seeded["tenant_id"])
        print(f"fulfilment outbox drained: {applied} orders in {elapsed:.1f} s ({applied / elapsed:,.0f}/s, "
              f"one process); a second pass over 200 of them applied nothing", flush=True)
        counts = db_check(env["DATABASE_URL"], seeded["tenant_id"])
        sent_total = sum(sum(r["statuses"].values()) for r in rounds)
        print(f"database: {counts}")
        failed |= counts["double_paid"] != 0 or counts["flagged"] != 0
        failed |= not (counts["applied"] == counts["notifications"] == counts["paid_orders"]
                       == counts["paid_transitions"] == counts["purchase_events"])
        print(f"deliveries answered 204 (all rounds incl. warm-up): counted on notifications "
              f"{counts['deliveries_counted']}; measured rounds sent {sent_total}")
        per_s, ceiling = (statistics.median(r[k] for r in rounds) for k in ("per_s", "ceiling"))
        print(f"median: {per_s:,.0f} verified notifies/s, ceiling {ceiling:,.0f} req/s (ratio {per_s / ceiling:.2f}), "
              f"p50 {statistics.median(r['p50_ms'] for r in rounds):.1f} ms, "
              f"p99 {statistics.median(r['p99_ms'] for r in rounds):.1f} ms; double applications: "
              f"{counts['double_paid']}", flush=True)
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
        purge_queue(env)
    if failed:
        raise SystemExit("not every delivery was answered 204 once, or something was applied twice: see above")


if __name__ == "__main__":
    main()
