"""Self-claims of one template committed together: how a flash sale (秒杀) gets past its hot row.

A claim alone locks the template's stock row from its statement to its commit, so claims of one
template run one after another however many workers there are, and each leaves a dead version of
that row behind. Here a claim joins its template's queue in Redis instead. A claim that finds one of
the template's ``SLOTS`` free leads a batch in it: it takes up to ``BATCH_SIZE`` waiting claims,
decides them in queue order in one PostgreSQL transaction of two round trips (lock and read; write
and commit), answers each claimant on its own Redis list, and hands the slot, with the next batch
already taken, to the claim then first in the queue. The stock row is updated once per batch; while
one batch holds it, the next waits for it inside PostgreSQL, so commits follow each other without a
Redis round trip or a process waking up in between.

PostgreSQL stays the truth: stock, per-member limits and coupons are what a batch committed, under
the same row locks, in the same order (counters in member-id order, then the template), as every
other issuing path, so batches, claims alone and grants can run side by side. Redis only orders
the claims and carries the answers. Each claimant picks its coupon's code before it queues; a batch
first looks those codes up, so a batch re-run after its leader died (its lease ran out) answers
what the first run committed instead of issuing again, and two runs of one batch at once insert
each coupon once (the code is unique; counts follow the rows inserted).
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import redis
from django.conf import settings
from django.db import DatabaseError, models
from django.utils.dateparse import parse_datetime
from redis.backoff import NoBackoff
from redis.retry import Retry

from campaigns import queries
from campaigns.actions.issuance import (
    TEMPLATE_COLUMNS,
    TEMPLATE_FIELDS,
    ClaimResult,
    check_claimable,
    issued_coupon,
    template_from_row,
    validity_for,
)
from campaigns.exceptions import CouponError, NotFound
from campaigns.models import Channel, ClaimCounter, Coupon, CouponTemplate, new_coupon_code
from profiles.models import Member
from profiles.queries import MemberNotFound
from tenants.context import tenant_context
from tenants.models import Tenant
from tenants.prepared import pipelined_transaction

log = logging.getLogger(__name__)

BATCH_SIZE = 200
# Batches of one template in flight at once: while one holds the stock row, the next has its claims
# and waits for the row in PostgreSQL, so no Redis or scheduling delay lies between two commits.
SLOTS = 2
LEAD_MS = 3000  # a leader's lease on its batch: far above a batch's few milliseconds
POLL_SECONDS = 0.5  # a waiter looks for a dead leader this often
GIVE_UP_SECONDS = 10.0
ATTEMPTS = 3  # a batch's transaction, retried on a deadlock or a lost connection
REPLY_TTL_SECONDS = 60
TICKET_CHARS = 16


class QueueUnreachable(Exception):
    """Redis refused the connection before the claim queued: nothing happened; claim alone instead."""


class ClaimsUnavailable(Exception):
    """The claim queued but no answer came in time (Redis or the database failing)."""

    retry_after = 2


# --- Redis: the queue, the lead and the answers ----------------------------------------------------

# KEYS[1] is the queue; a slot is a lead key and the list of the batch in flight under it.
_TAKE_BODY = """
local function take(inflight, lead, batch)
  local items = redis.call('LRANGE', inflight, 0, -1)
  if #items > 0 then return items end
  items = redis.call('LRANGE', KEYS[1], 0, batch - 1)
  if #items == 0 then redis.call('DEL', lead) return false end
  redis.call('LTRIM', KEYS[1], #items, -1)
  redis.call('RPUSH', inflight, unpack(items))
  return items
end
local function lead_a_free_slot(ticket, lease, batch)
  for i = 2, #KEYS, 2 do
    if redis.call('SET', KEYS[i + 1], ticket, 'NX', 'PX', lease) then
      local items = take(KEYS[i], KEYS[i + 1], batch)
      if items then return {(i - 2) / 2, items} end
    end
  end
  return false
end
"""
# KEYS: queue, then inflight and lead of every slot. ARGV: item, ticket, lease ms, batch size. Queue
# the claim; lead a batch in a free slot if there is one: a batch a dead leader left there, else the
# queue's first claims.
_ENQUEUE = _TAKE_BODY + """
redis.call('RPUSH', KEYS[1], ARGV[1])
return lead_a_free_slot(ARGV[2], ARGV[3], tonumber(ARGV[4]))
"""
# As ENQUEUE, without queueing: when no answer came for a while (a leader died, its lease ran out).
_RESCUE = _TAKE_BODY + """
return lead_a_free_slot(ARGV[1], ARGV[2], tonumber(ARGV[3]))
"""
# KEYS: queue, inflight and lead of one slot. ARGV: ticket, lease ms, batch size, reply key prefix,
# reply ttl, slot, then ticket/answer pairs. Answer the batch; if this ticket still leads the slot,
# take the next batch for the claim first in the queue and hand it the slot with its batch in the
# one message (no round trip to fetch it). The next batch is returned when that claim is this one.
_COMPLETE = _TAKE_BODY + """
for i = 7, #ARGV, 2 do
  local key = ARGV[4] .. ARGV[i]
  redis.call('RPUSH', key, ARGV[i + 1])
  redis.call('EXPIRE', key, ARGV[5])
end
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return false end
redis.call('DEL', KEYS[2])
local head = redis.call('LINDEX', KEYS[1], 0)
if not head then redis.call('DEL', KEYS[3]) return false end
local nxt = string.sub(head, 1, string.find(head, ' ', 1, true) - 1)
redis.call('SET', KEYS[3], nxt, 'PX', ARGV[2])
local items = take(KEYS[2], KEYS[3], tonumber(ARGV[3]))
if nxt == ARGV[1] then return items end
local key = ARGV[4] .. nxt
redis.call('RPUSH', key, '!lead ' .. ARGV[6] .. '\\n' .. table.concat(items, '\\n'))
redis.call('EXPIRE', key, ARGV[5])
return false
"""
_LEAD = b"!lead "


@cache
def _client() -> redis.Redis:
    # No retries: a retried ENQUEUE would queue the claim twice, a retried BLPOP could drop an answer.
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=POLL_SECONDS + 5,
                                health_check_interval=30, retry=Retry(NoBackoff(), 0))


@cache
def _scripts() -> dict[str, Any]:
    client = _client()
    return {name: client.register_script(body) for name, body in
            (("enqueue", _ENQUEUE), ("rescue", _RESCUE), ("complete", _COMPLETE))}


def key_prefix() -> str:
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "jz") or "jz"
    return f"{prefix}:claims:"


@dataclass(frozen=True)
class _Keys:
    queue: str
    slots: tuple[tuple[str, str], ...]  # (inflight, lead) of each slot
    reply_prefix: str

    @classmethod
    def of(cls, tenant_id: int, template_id: int) -> _Keys:
        # One hash tag per template: its keys live together (one slot, were Redis a cluster).
        base = f"{key_prefix()}{{{tenant_id}:{template_id}}}:"
        return cls(base + "queue", tuple((f"{base}inflight:{i}", f"{base}lead:{i}") for i in range(SLOTS)),
                   base + "reply:")

    @property
    def every_slot(self) -> list[str]:
        return [self.queue, *(key for slot in self.slots for key in slot)]

    def slot(self, index: int) -> list[str]:
        return [self.queue, *self.slots[index]]


def enabled() -> bool:
    return bool(settings.CLAIM_BATCHING and settings.REDIS_URL)


# --- the claimant ----------------------------------------------------------------------------------

def claim_in_batch(tenant: Tenant, template_id: int, member: Member, *, key: str, now: datetime) -> ClaimResult:
    """A self-claim decided in its template's next batch; the same answers as a claim alone.

    Raises QueueUnreachable before anything happened when Redis refuses the connection, and
    ClaimsUnavailable when no answer came (the claim is then withdrawn from the queue if it was
    still there; a retry with the same Idempotency-Key is always safe).
    """
    keys = _Keys.of(tenant.pk, template_id)
    ticket = secrets.token_hex(TICKET_CHARS // 2)
    code = new_coupon_code()
    item = claim_item(ticket, member.pk, key=key, code=code, now=now)
    scripts = _scripts()
    try:
        led = scripts["enqueue"](keys=keys.every_slot, args=[item, ticket, LEAD_MS, BATCH_SIZE])
    except redis.ConnectionError as exc:
        raise QueueUnreachable(str(exc)) from exc
    try:
        answer = _await_answer(tenant.pk, template_id, keys, ticket, item, led)
    except redis.RedisError as exc:
        log.warning("coupon claim queue failed: %s", exc)
        with suppress(redis.RedisError):  # not to be issued after this claim has answered
            _client().lrem(keys.queue, 0, item)
        answer = {"s": "error"}
    return _result(answer, tenant, template_id, member, code=code, key=key)


def claim_item(ticket: str, member_id: int, *, key: str, code: str, now: datetime) -> str:
    """A claim as it waits in the queue: its ticket first (the lead is handed to it), then what it asks."""
    return f"{ticket} " + json.dumps({"m": member_id, "k": key, "c": code, "n": now.isoformat()})


def _await_answer(tenant_id: int, template_id: int, keys: _Keys, ticket: str, item: str, led: list | None) -> dict:
    """``led``: [slot, batch] when this claim leads a batch (as ENQUEUE and RESCUE answer)."""
    scripts = _scripts()
    client = _client()
    mine: str | None = None
    deadline = time.monotonic() + GIVE_UP_SECONDS
    withdrawn_too_late = False
    while True:
        while led:
            slot, batch = int(led[0]), led[1]
            answers = decide_batch(tenant_id, template_id, batch)
            mine = answers.pop(ticket, mine)
            pairs = [v for pair in answers.items() for v in pair]
            batch = scripts["complete"](keys=keys.slot(slot), args=[ticket, LEAD_MS, BATCH_SIZE, keys.reply_prefix,
                                                                    REPLY_TTL_SECONDS, slot, *pairs])
            # This claim is first in the queue: it leads the slot's next batch as well.
            led = [slot, batch] if batch else None
        if mine is not None:
            return json.loads(mine)
        got = client.blpop([keys.reply_prefix + ticket], timeout=POLL_SECONDS)
        if got is not None:
            if got[1].startswith(_LEAD):  # a slot, handed over with the batch to decide
                head, _, items = got[1][len(_LEAD):].partition(b"\n")
                led = [int(head), items.split(b"\n")]
                continue
            return json.loads(got[1])
        if time.monotonic() > deadline:
            if withdrawn_too_late or client.lrem(keys.queue, 1, item):
                raise ClaimsUnavailable()
            # Already taken into a batch: its answer is on its way (or its re-run's is).
            withdrawn_too_late = True
            deadline = time.monotonic() + GIVE_UP_SECONDS
        led = scripts["rescue"](keys=keys.every_slot, args=[ticket, LEAD_MS, BATCH_SIZE])


def _result(answer: dict, tenant: Tenant, template_id: int, member: Member, *, code: str, key: str) -> ClaimResult:
    kind = answer["s"]
    if kind == "ok":
        coupon = issued_coupon(
            coupon_id=answer["id"], template=_template_from_answer(answer["tpl"]), member=member,
            code=answer["code"], claimed_at=parse_datetime(answer["at"]), valid_from=parse_datetime(answer["vf"]),
            valid_until=parse_datetime(answer["vu"]) if answer["vu"] else None, channel=Channel.SELF_CLAIM,
            idempotency_key=key)
        return ClaimResult(coupon, answer["created"])
    if kind == "refused":
        raise CouponError(answer["code"], **answer["details"])
    if kind == "gone":
        raise MemberNotFound(member.pk)
    if kind == "not_found":
        raise NotFound(template_id)
    with tenant_context(tenant):
        if kind == "replay":
            return ClaimResult(queries.get_coupon(answer["id"]), False)
        # "lookup": another run of the batch inserted it; "error": the batch failed, perhaps after its
        # commit. Either way the coupon is there under its code or was never issued.
        coupon = (Coupon.objects.select_related("template")
                  .filter(code=answer.get("code", code), member_id=member.pk).first())
    if coupon is not None:
        return ClaimResult(coupon, answer.get("created", True))
    raise ClaimsUnavailable()


# --- the leader: one batch, one transaction --------------------------------------------------------

_COUNTER = ClaimCounter._meta.db_table
_COUPON = Coupon._meta.db_table
_TEMPLATE = CouponTemplate._meta.db_table
_MEMBER = Member._meta.db_table

# Round 1, run in this order (each statement sees what committed before the locks it waited for):
# the batch's counters (created at 0 where missing, locked in member-id order) when the template has a
# per-member limit, then the template row, then who is still a member, what their keys already issued,
# and which of the batch's codes a run of this batch already committed.
_LOCK_COUNTERS = f"""
INSERT INTO {_COUNTER} AS c (tenant_id, template_id, member_id, count)
SELECT %(tenant)s, %(template)s, m, 0 FROM unnest(%(members)s::bigint[]) AS m
WHERE EXISTS (SELECT 1 FROM {_TEMPLATE} WHERE tenant_id = %(tenant)s AND id = %(template)s AND per_member_limit > 0)
ORDER BY m
ON CONFLICT (tenant_id, template_id, member_id) DO UPDATE SET count = c.count
RETURNING c.member_id, c.count, c.ctid
"""  # noqa: S608 - table names from the models, values as parameters
_LOCK_TEMPLATE = f"""
SELECT {", ".join(TEMPLATE_COLUMNS)} FROM {_TEMPLATE} WHERE tenant_id = %(tenant)s AND id = %(template)s
FOR NO KEY UPDATE
"""  # noqa: S608
_LIVE_MEMBERS = f"""
SELECT id FROM {_MEMBER} WHERE tenant_id = %(tenant)s AND id = ANY(%(members)s::bigint[]) AND erased_at IS NULL
"""  # noqa: S608
# Both probe a unique index once per claim: OFFSET 0 keeps each lateral subquery a subquery, run per
# claim with its value bound, so the planner cannot turn it into a scan of the tenant's coupons when
# its statistics still say the table is nearly empty (a new shop's first flash sale).
_PRIORS = f"""
SELECT c.member_id, c.idempotency_key, c.id, c.template_id
FROM unnest(%(keyed_members)s::bigint[], %(keys)s::text[]) AS p(member_id, idempotency_key)
CROSS JOIN LATERAL (
    SELECT member_id, idempotency_key, id, template_id FROM {_COUPON}
    WHERE tenant_id = %(tenant)s AND member_id = p.member_id AND idempotency_key = p.idempotency_key
      AND idempotency_key <> '' OFFSET 0
) AS c
"""  # noqa: S608
_EXISTING = f"""
SELECT c.code, c.id, c.member_id, c.template_id, c.claimed_at, c.valid_from, c.valid_until
FROM unnest(%(codes)s::text[]) AS p(code)
CROSS JOIN LATERAL (
    SELECT code, id, member_id, template_id, claimed_at, valid_from, valid_until FROM {_COUPON}
    WHERE tenant_id = %(tenant)s AND code = p.code OFFSET 0
) AS c
"""  # noqa: S608
# Round 2: the winners' coupons (a code a concurrent run inserted is skipped), and the counters and
# stock raised by what was inserted; counters created at 0 for members who won nothing go again.
# Counters by the row versions round 1 locked and returned (``ctid``: they cannot move while locked),
# so no plan has to find them among the template's counters.
_WRITE = f"""
WITH w AS (
    SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb)
        AS w(member_id bigint, code text, claimed_at timestamptz, valid_from timestamptz,
             valid_until timestamptz, idempotency_key text)
), ins AS (
    INSERT INTO {_COUPON} (tenant_id, template_id, member_id, code, state, claimed_at, valid_from, valid_until,
        order_ref, channel, campaign_ref, granted_by_id, idempotency_key)
    SELECT %(tenant)s, %(template)s, member_id, code, %(unused)s, claimed_at, valid_from, valid_until, '',
        %(channel)s, '', NULL, idempotency_key
    FROM w
    ON CONFLICT DO NOTHING
    RETURNING id, member_id, code
), per AS (
    SELECT member_id, count(*) AS n FROM ins GROUP BY member_id
), counted AS (
    UPDATE {_COUNTER} AS c SET count = c.count + per.n FROM per
    WHERE c.ctid = ANY(%(counter_rows)s::tid[]) AND c.member_id = per.member_id
    RETURNING 1
), stock AS (
    UPDATE {_TEMPLATE} SET issued = issued + (SELECT count(*) FROM ins)
    WHERE tenant_id = %(tenant)s AND id = %(template)s
    RETURNING issued
)
SELECT code, id, (SELECT issued FROM stock) FROM ins
"""  # noqa: S608
_DROP_ZEROS = f"""
DELETE FROM {_COUNTER} WHERE ctid = ANY(%(zeros)s::tid[]) AND count = 0
"""  # noqa: S608


class _Retry(Exception):
    pass


def _dumps(value: Any) -> str:
    # Full microseconds (Django's encoder would cut datetimes to milliseconds).
    return json.dumps(value, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v))


def _template_for_answer(template: CouponTemplate) -> list:
    return [getattr(template, f.attname) for f in TEMPLATE_FIELDS]


def _template_from_answer(values: list) -> CouponTemplate:
    values = [parse_datetime(v) if v is not None and isinstance(f, models.DateTimeField) else v
              for f, v in zip(TEMPLATE_FIELDS, values, strict=True)]
    return CouponTemplate.from_db("default", [f.attname for f in TEMPLATE_FIELDS], values)


@dataclass(frozen=True)
class _Claim:
    ticket: str
    member_id: int
    key: str
    code: str
    now: datetime

    @classmethod
    def parse(cls, raw: bytes) -> _Claim:
        text = raw.decode()
        body = json.loads(text[TICKET_CHARS + 1:])
        return cls(text[:TICKET_CHARS], int(body["m"]), body["k"], body["c"], parse_datetime(body["n"]))


def decide_batch(tenant_id: int, template_id: int, batch: list[bytes]) -> dict[str, str]:
    """Decide and commit one batch; each ticket's answer as JSON. Never raises: a batch that cannot
    commit answers ``error`` to all, and each claimant then looks for its own coupon."""
    # A claim queued twice (a retried command that had reached Redis) is one claim: one per ticket.
    claims = list({c.ticket: c for c in map(_Claim.parse, batch)}.values())
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return {ticket: _dumps(answer) for ticket, answer in _run_batch(tenant_id, template_id, claims).items()}
        except (_Retry, DatabaseError) as exc:
            if attempt == ATTEMPTS:
                log.exception("a batch of %d coupon claims could not commit", len(claims))
            else:
                log.info("retrying a batch of coupon claims: %s", exc)
        except Exception:
            log.exception("a batch of %d coupon claims failed", len(claims))
            break
    return {c.ticket: _dumps({"s": "error"}) for c in claims}


def _run_batch(tenant_id: int, template_id: int, claims: list[_Claim]) -> dict[str, dict]:
    members = sorted({c.member_id for c in claims})
    keyed = sorted({(c.member_id, c.key) for c in claims if c.key})
    params = {"tenant": tenant_id, "template": template_id, "members": members, "codes": [c.code for c in claims],
              "keyed_members": [m for m, _k in keyed], "keys": [k for _m, k in keyed]}
    with pipelined_transaction(tenant_id) as tx:
        with tx.round():
            counters_q = tx.execute(_LOCK_COUNTERS, params)
            template_q = tx.execute(_LOCK_TEMPLATE, params)
            live_q = tx.execute(_LIVE_MEMBERS, params)
            priors_q = tx.execute(_PRIORS, params) if keyed else None
            existing_q = tx.execute(_EXISTING, params)
        row = template_q.fetchone()
        if row is None:  # missing, or another tenant's: nothing was locked, nothing to keep
            return {c.ticket: {"s": "not_found"} for c in claims}
        template = template_from_row(row)
        counter_rows = counters_q.fetchall()
        counters = {member_id: count for member_id, count, _row in counter_rows}
        if template.per_member_limit and set(members) - counters.keys():
            raise _Retry("the per-member limit was set after the batch locked its counters")
        batch = _Batch(template, counters=counters, live={r[0] for r in live_q.fetchall()},
                       priors={(r[0], r[1]): (r[2], r[3]) for r in priors_q.fetchall()} if priors_q else {},
                       existing={r[0]: (r[1], r[2], *r[4:]) for r in existing_q.fetchall() if r[3] == template_id})
        for claim in claims:
            batch.decide(claim)
        holders = {w["member_id"] for w in batch.winners} | {v[1] for v in batch.existing.values()}
        write = {"tenant": tenant_id, "template": template_id, "unused": Coupon.State.UNUSED,
                 "channel": Channel.SELF_CLAIM, "rows": _dumps(batch.winners),
                 "counter_rows": [row for _m, _n, row in counter_rows],
                 "zeros": [row for m, n, row in counter_rows if n == 0 and m not in holders]}
        with tx.round():
            inserted_q = tx.execute(_WRITE, write) if batch.winners else None
            if write["zeros"]:
                tx.execute(_DROP_ZEROS, write)
            tx.commit()
    inserted = {code: (coupon_id, issued) for code, coupon_id, issued in inserted_q.fetchall()} if inserted_q else {}
    if inserted:
        template.issued = next(iter(inserted.values()))[1]
    return batch.answers(inserted, _template_for_answer(template))


class _Batch:
    """The batch's claims decided in queue order against the locked rows, as claims alone would be."""

    def __init__(self, template: CouponTemplate, *, counters: dict[int, int], live: set[int],
                 priors: dict[tuple[int, str], tuple[int, int]], existing: dict[str, tuple]):
        self.template = template
        self.counters = counters
        self.live = live
        self.priors = priors
        self.existing = existing  # code → (id, member, claimed_at, valid_from, valid_until), committed before
        self.winners: list[dict] = []
        self._decided: dict[str, Any] = {}  # ticket → answer, or ("win", claim), or ("same", ticket)
        self._first_with_key: dict[tuple[int, str], str] = {}
        self._order: list[str] = []

    def decide(self, claim: _Claim) -> None:
        self._order.append(claim.ticket)
        self._decided[claim.ticket] = self._decision(claim)

    def _decision(self, claim: _Claim) -> Any:
        template = self.template
        done = self.existing.get(claim.code)
        if done is not None and done[1] == claim.member_id:  # a run of this batch issued it already
            if claim.key:
                self._first_with_key.setdefault((claim.member_id, claim.key), claim.ticket)
            coupon_id, _member, claimed_at, valid_from, valid_until = done
            return {"s": "ok", "created": True, "id": coupon_id, "code": claim.code, "at": claimed_at,
                    "vf": valid_from, "vu": valid_until}
        if claim.member_id not in self.live:
            return {"s": "gone"}
        if claim.key:
            mine = (claim.member_id, claim.key)
            if mine in self._first_with_key:  # the same tap twice in one batch: the first one's answer
                return ("same", self._first_with_key[mine])
            self._first_with_key[mine] = claim.ticket
            if mine in self.priors:
                prior_id, prior_template = self.priors[mine]
                if prior_template != template.pk:
                    return _refusal(CouponError("idempotency_conflict", coupon_id=prior_id))
                return {"s": "replay", "id": prior_id}
        try:
            check_claimable(template, Channel.SELF_CLAIM, claim.now)
        except CouponError as exc:
            return _refusal(exc)
        limit = template.per_member_limit
        if limit and self.counters[claim.member_id] >= limit:
            return _refusal(CouponError("limit_reached", limit=limit))
        if limit:
            self.counters[claim.member_id] += 1
        template.issued += 1
        valid_from, valid_until = validity_for(template, claim.now)
        self.winners.append({"member_id": claim.member_id, "code": claim.code, "claimed_at": claim.now,
                             "valid_from": valid_from, "valid_until": valid_until, "idempotency_key": claim.key})
        return ("win", claim)

    def answers(self, inserted: dict[str, tuple[int, int]], template_values: list) -> dict[str, dict]:
        won = {w["code"]: w for w in self.winners}

        def answer(ticket: str) -> dict:
            decided = self._decided[ticket]
            if isinstance(decided, dict):
                return {**decided, "tpl": template_values} if decided["s"] == "ok" else decided
            kind, ref = decided
            if kind == "same":
                first = answer(ref)
                return {**first, "created": False} if first["s"] in ("ok", "lookup") else first
            w = won[ref.code]
            if ref.code not in inserted:  # another run of this batch inserted it meanwhile
                return {"s": "lookup", "code": ref.code, "created": True}
            return {"s": "ok", "created": True, "id": inserted[ref.code][0], "code": ref.code,
                    "at": w["claimed_at"], "vf": w["valid_from"], "vu": w["valid_until"], "tpl": template_values}

        return {ticket: answer(ticket) for ticket in self._order}


def _refusal(exc: CouponError) -> dict:
    return {"s": "refused", "code": exc.code, "details": exc.details}
