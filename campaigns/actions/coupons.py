"""State changes of coupons: templates, claims and grants, the order lifecycle, revocation.

Concurrency (PostgreSQL, READ COMMITTED): a claim bumps the member's counter row with
``INSERT … ON CONFLICT DO UPDATE … WHERE count < limit``, takes stock with
``UPDATE … SET issued = issued + 1 WHERE issued < stock`` and inserts the coupon. Each re-checks its
condition on the latest committed row, so neither the per-member limit nor the stock can be
exceeded. On PostgreSQL the three (and the Idempotency-Key look-up) are one statement, so the hot
stock row is locked from the middle of that statement to the commit and no longer; what a refused
claim already counted is put back before the refusal is raised. Every path locks counter rows
before the template row (bulk grants too, counters in member-id order), so claims and grants never
deadlock each other.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns import queries
from campaigns.actions import claim_batches
from campaigns.actions.issuance import (
    GATED_CHANNELS,
    TEMPLATE_COLUMNS,
    ClaimResult,
    check_claimable,
    issued_coupon,
    template_from_row,
    validity_for,
)
from campaigns.exceptions import CouponError, NotFound
from campaigns.models import Channel, ClaimCounter, Coupon, CouponTemplate, new_coupon_code
from campaigns.scope import joined, within
from catalog.models import Category, Item
from profiles.models import Member
from profiles.queries import MemberNotFound
from tenants.actions import audit
from tenants.context import current_tenant, tenant_context
from tenants.models import Tenant
from tenants.prepared import execute_alone, prepared_cursor

log = logging.getLogger(__name__)

State = CouponTemplate.State
Kind = CouponTemplate.Kind

# Fields that decide what a held coupon is worth or when it is valid: frozen once any is issued.
FROZEN_AFTER_ISSUE = (
    "kind", "value", "threshold_fen", "cap_fen", "exchange_item", "item_ids", "category_ids",
    "excluded_item_ids", "excluded_category_ids", "stackable", "valid_from", "valid_days", "start_delay_days",
)
EDITABLE = (
    "name", "description", "stock", "per_member_limit", "channels", "points_cost", "valid_until",
    *FROZEN_AFTER_ISSUE,
)
TRANSITIONS = {
    State.DRAFT: {State.ACTIVE, State.ENDED},
    State.ACTIVE: {State.PAUSED, State.ENDED},
    State.PAUSED: {State.ACTIVE, State.ENDED},
    State.ENDED: set(),
}


# --- templates -----------------------------------------------------------------------------------

def _ids_of(model, ids: Any, field: str, errors: dict[str, list[str]]) -> list[int]:
    try:
        wanted = sorted({int(i) for i in (ids or [])})
    except (TypeError, ValueError):
        errors.setdefault(field, []).append(_("请选择有效的商品或分类。"))
        return []
    found = set(model.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    if len(found) != len(wanted):
        errors.setdefault(field, []).append(_("有商品或分类不存在。"))
    return wanted


def _validate(t: CouponTemplate) -> None:
    """Every rule in words a merchant understands; raises one ValidationError with all of them."""
    errors: dict[str, list[str]] = {}

    def err(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    if not (t.name or "").strip():
        err("name", _("请填写名称。"))
    if t.kind not in Kind.values:
        err("kind", _("请选择券类型。"))
    if t.kind == Kind.CASH_OFF:
        if t.value <= 0:
            err("value", _("满减券的面值必须大于 0 分。"))
        if t.threshold_fen <= 0:
            err("threshold_fen", _("满减券需要使用门槛（满多少元可用）；没有门槛请选“立减券”。"))
        elif t.value > t.threshold_fen:
            err("value", _("满减券的面值不能高于使用门槛。"))
    elif t.kind == Kind.INSTANT_OFF:
        if t.value <= 0:
            err("value", _("立减券的面值必须大于 0 分。"))
        if t.threshold_fen:
            err("threshold_fen", _("立减券没有使用门槛；需要门槛请选“满减券”。"))
    elif t.kind == Kind.PERCENT_OFF:
        if not 1 <= t.value <= 99:
            err("value", _("折扣券的折扣须在 1% 到 99% 之间（例如 20 表示减 20%，即八折）。"))
    elif t.kind == Kind.EXCHANGE:
        if t.exchange_item_id is None:
            err("exchange_item", _("兑换券需要选择兑换的商品。"))
    if t.cap_fen is not None and t.cap_fen <= 0:
        err("cap_fen", _("最高优惠必须大于 0 分，不限请留空。"))
    if t.stock is not None and t.stock < t.issued:
        err("stock", _("库存不能少于已发放的 %(n)d 张。") % {"n": t.issued})
    if t.valid_days is None and t.valid_until is None:
        err("valid_until", _("请设置有效期：固定的失效时间，或领取后有效的天数。"))
    if t.valid_days is not None and t.valid_days <= 0:
        err("valid_days", _("领取后有效天数必须大于 0。"))
    if t.valid_from and t.valid_until and t.valid_from >= t.valid_until:
        err("valid_until", _("失效时间必须晚于生效时间。"))
    unknown = set(t.channels or ()) - set(Channel.values)
    if unknown:
        err("channels", _("未知的发放渠道：%(c)s") % {"c": ", ".join(sorted(unknown))})
    if t.points_cost and t.channels and Channel.POINTS not in t.channels:
        err("points_cost", _("设置了兑换积分，请同时勾选“积分兑换”渠道。"))
    if Channel.POINTS in (t.channels or ()) and not t.points_cost:
        err("points_cost", _("积分兑换渠道需要设置所需积分。"))
    t.item_ids = _ids_of(Item, t.item_ids, "item_ids", errors)
    t.excluded_item_ids = _ids_of(Item, t.excluded_item_ids, "excluded_item_ids", errors)
    t.category_ids = _ids_of(Category, t.category_ids, "category_ids", errors)
    t.excluded_category_ids = _ids_of(Category, t.excluded_category_ids, "excluded_category_ids", errors)
    if errors:
        raise ValidationError(errors)


def _assign(template: CouponTemplate, fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        if name not in EDITABLE:
            raise ValidationError({name: [_("不能修改这个字段。")]})
        if name == "exchange_item":
            template.exchange_item_id = value.pk if isinstance(value, Item) else (int(value) if value else None)
        else:
            setattr(template, name, value)


def create_coupon_template(tenant: Tenant, *, actor=None, activate: bool = False, **fields) -> CouponTemplate:
    """A new template (draft unless ``activate``); the console and the command both call this."""
    with within(tenant):
        template = CouponTemplate(tenant=tenant, created_by=actor)
        fields.setdefault("channels", [Channel.SELF_CLAIM, Channel.STAFF, Channel.CAMPAIGN])
        _assign(template, fields)
        _validate(template)
        if activate:
            template.state = State.ACTIVE
        template.save()
        audit(tenant, "coupon.template_created", actor=actor, target=f"template:{template.pk}",
              name=template.name, kind=template.kind, value=template.value, stock=template.stock,
              state=template.state)
        return template


def update_coupon_template(tenant: Tenant, template_id: int, *, actor=None, **fields) -> CouponTemplate:
    """Edit a template; once any coupon is issued, what a held coupon is worth cannot change."""
    with within(tenant):
        template = queries.get_template(template_id, for_update=True)
        if template.state == State.ENDED:
            raise ValidationError({"__all__": [_("已结束的优惠券不能再修改。")]})
        if template.issued:
            changed = [n for n in FROZEN_AFTER_ISSUE if n in fields and _differs(template, n, fields[n])]
            if changed:
                raise ValidationError({n: [_("已有会员持有这张券，不能再修改它的面值、门槛、范围或有效期规则。")]
                                       for n in changed})
        before = {n: _plain(getattr(template, n if n != "exchange_item" else "exchange_item_id")) for n in fields}
        _assign(template, fields)
        _validate(template)
        template.save()
        after = {n: _plain(getattr(template, n if n != "exchange_item" else "exchange_item_id")) for n in fields}
        diff = {n: [before[n], after[n]] for n in fields if before[n] != after[n]}
        audit(tenant, "coupon.template_updated", actor=actor, target=f"template:{template.pk}", changes=diff)
        return template


def _differs(template: CouponTemplate, name: str, value: Any) -> bool:
    if name == "exchange_item":
        new = value.pk if isinstance(value, Item) else (int(value) if value else None)
        return template.exchange_item_id != new
    current = getattr(template, name)
    if name.endswith("_ids"):
        return sorted(int(i) for i in current or ()) != sorted(int(i) for i in value or ())
    return current != value


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def set_template_state(tenant: Tenant, template_id: int, state: str, *, actor=None) -> CouponTemplate:
    with within(tenant):
        template = queries.get_template(template_id, for_update=True)
        if state not in TRANSITIONS.get(template.state, set()):
            raise CouponError("bad_transition", from_state=template.state, to_state=state)
        previous = template.state
        template.state = state
        template.save(update_fields=["state", "updated_at"])
        audit(tenant, f"coupon.template_{state}", actor=actor, target=f"template:{template.pk}",
              previous=previous)
        return template


# --- claims and grants ---------------------------------------------------------------------------

def _bump_counter(tenant: Tenant, template: CouponTemplate, member_id: int) -> bool:
    """Count one more coupon for the member, unless that would pass the limit. One statement."""
    table = ClaimCounter._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (tenant_id, template_id, member_id, count) VALUES (%s, %s, %s, 1) "  # noqa: S608
            f"ON CONFLICT (tenant_id, template_id, member_id) DO UPDATE SET count = {table}.count + 1 "
            f"WHERE {table}.count < %s RETURNING count",
            [tenant.pk, template.pk, member_id, template.per_member_limit],
        )
        return cursor.fetchone() is not None


def _take_stock(template: CouponTemplate, n: int = 1) -> bool:
    qs = CouponTemplate.objects.filter(pk=template.pk)
    if template.stock is not None:
        qs = qs.filter(issued__lte=F("stock") - n)
    return qs.update(issued=F("issued") + n) == 1


def _replayed(member: Member, key: str, template_id: int) -> Coupon | None:
    if not key:
        return None
    coupon = Coupon.objects.filter(member=member, idempotency_key=key).first()
    if coupon is not None and coupon.template_id != int(template_id):
        raise CouponError("idempotency_conflict", coupon_id=coupon.pk)
    return coupon


def claim_coupon(tenant: Tenant, template_id: int, member: Member, *, channel: str = Channel.SELF_CLAIM,
                 idempotency_key: str = "", campaign_ref: str = "", granted_by=None,
                 now: datetime | None = None) -> ClaimResult:
    """Issue one coupon of the template to the member: the self-claim, and every single grant.

    Raises NotFound (also for another tenant's template), CouponError ``not_active``,
    ``channel_not_allowed``, ``sold_out``, ``limit_reached``, ``idempotency_conflict``; MemberNotFound
    when the member is erased or gone (``member`` may be a reference with only its id loaded).
    """
    now = now or timezone.now()
    key = (idempotency_key or "")[:100]
    if member.tenant_id != tenant.pk:
        raise NotFound(member.pk)
    try:
        template_pk = int(template_id)
    except (TypeError, ValueError):
        raise NotFound(template_id) from None
    if connection.vendor == "postgresql":
        alone = current_tenant() is None and not connection.in_atomic_block
        if alone and channel == Channel.SELF_CLAIM and not campaign_ref and granted_by is None \
                and claim_batches.enabled():
            try:
                return claim_batches.claim_in_batch(tenant, template_pk, member, key=key, now=now)
            except claim_batches.QueueUnreachable as exc:
                _queue_unreachable(exc)  # nothing queued: the claim alone decides instead
        with nullcontext() if alone else joined(tenant):
            return _claim_in_one_statement(tenant, template_pk, member, channel=channel, key=key,
                                           campaign_ref=campaign_ref, granted_by=granted_by, now=now, alone=alone)
    with within(tenant):
        if not Member.objects.filter(pk=member.pk, erased_at__isnull=True).exists():
            raise MemberNotFound(member.pk)
        replay = _replayed(member, key, template_pk)
        if replay is not None:
            return ClaimResult(replay, False)
        template = queries.get_template(template_pk)
        check_claimable(template, channel, now)
        valid_from, valid_until = validity_for(template, now)
        try:
            with transaction.atomic():
                coupon = Coupon.objects.create(
                    template=template, member=member, claimed_at=now, valid_from=valid_from,
                    valid_until=valid_until, channel=channel, campaign_ref=campaign_ref,
                    granted_by=granted_by, idempotency_key=key,
                )
                if template.per_member_limit and not _bump_counter(tenant, template, member.pk):
                    raise CouponError("limit_reached", limit=template.per_member_limit)
                if not _take_stock(template):
                    raise CouponError("sold_out")
        except (IntegrityError, CouponError):
            # A concurrent request with the same key committed first: answer with its coupon.
            replay = _replayed(member, key, template_pk)
            if replay is not None:
                return ClaimResult(replay, False)
            raise
        coupon.template = template
        return ClaimResult(coupon, True)


# The whole claim in one round trip. ``mem``: the member, still there (not erased): callers may pass
# a member they have not loaded. ``tpl``: the template, if it looks claimable in this statement's
# snapshot, so that a sold-out or paused template bumps no counter to be given back. ``prior``: the coupon this Idempotency-Key already issued.
# ``counted``: the member's counter, bumped only while under the limit. ``taken``: one unit of stock,
# only from a claimable template (the SQL twin of ``check_claimable``), only when counted; its
# RETURNING is the template row as it is now. ``issued``: the coupon, valid as ``validity_for``
# says (whole 24-hour days, like timedelta), unless a concurrent retry with the same key got there
# first. The CTEs run in that order because each reads the one before it.
_CLAIM_SQL = f"""
WITH mem AS (
    SELECT id FROM {Member._meta.db_table} WHERE tenant_id = %(tenant)s AND id = %(member)s AND erased_at IS NULL
), prior AS (
    SELECT id, template_id FROM {Coupon._meta.db_table}
    WHERE tenant_id = %(tenant)s AND member_id = %(member)s AND %(key)s <> '' AND idempotency_key = %(key)s
), tpl AS (
    SELECT id, per_member_limit FROM {CouponTemplate._meta.db_table}
    WHERE tenant_id = %(tenant)s AND id = %(template)s AND EXISTS (SELECT 1 FROM mem)
      AND state = %(active)s AND (stock IS NULL OR issued < stock)
), counted AS (
    INSERT INTO {ClaimCounter._meta.db_table} AS c (tenant_id, template_id, member_id, count)
    SELECT %(tenant)s, %(template)s, %(member)s, 1 FROM tpl
    WHERE tpl.per_member_limit > 0 AND NOT EXISTS (SELECT 1 FROM prior)
    ON CONFLICT (tenant_id, template_id, member_id) DO UPDATE SET count = c.count + 1
    WHERE c.count < (SELECT per_member_limit FROM tpl)
    RETURNING c.count
), taken AS (
    UPDATE {CouponTemplate._meta.db_table} AS t SET issued = t.issued + 1
    WHERE t.id = (SELECT id FROM tpl)
      AND t.state = %(active)s AND (t.valid_until IS NULL OR t.valid_until > %(now)s::timestamptz)
      AND (NOT %(gated)s OR jsonb_array_length(t.channels) = 0 OR t.channels @> jsonb_build_array(%(channel)s::text))
      AND (t.stock IS NULL OR t.issued < t.stock)
      AND NOT EXISTS (SELECT 1 FROM prior)
      AND (t.per_member_limit = 0 OR EXISTS (SELECT 1 FROM counted))
    RETURNING {", ".join(f"t.{c}" for c in TEMPLATE_COLUMNS)}
), validity AS (
    SELECT CASE WHEN coalesce(valid_days, 0) > 0
                THEN %(now)s::timestamptz + make_interval(hours => 24 * start_delay_days)
                ELSE greatest(coalesce(valid_from, %(now)s::timestamptz), %(now)s::timestamptz) END AS valid_from,
           CASE WHEN coalesce(valid_days, 0) > 0
                THEN least(%(now)s::timestamptz + make_interval(hours => 24 * (start_delay_days + valid_days)), valid_until)
                ELSE valid_until END AS valid_until,
           id
    FROM taken
), issued AS (
    INSERT INTO {Coupon._meta.db_table} (tenant_id, template_id, member_id, code, state, claimed_at, valid_from,
        valid_until, order_ref, channel, campaign_ref, granted_by_id, idempotency_key)
    SELECT %(tenant)s, v.id, %(member)s, %(code)s, %(unused)s, %(now)s::timestamptz, v.valid_from, v.valid_until, '',
        %(channel)s, %(campaign)s, %(granted_by)s, %(key)s
    FROM validity v
    ON CONFLICT (tenant_id, member_id, idempotency_key) WHERE NOT (idempotency_key = '') DO NOTHING
    RETURNING id, valid_from, valid_until
)
SELECT EXISTS (SELECT 1 FROM mem), (SELECT id FROM prior), (SELECT template_id FROM prior), EXISTS (SELECT 1 FROM counted),
       i.id, i.valid_from, i.valid_until, {", ".join(f"t.{c}" for c in TEMPLATE_COLUMNS)}
FROM (SELECT 1) AS one LEFT JOIN taken AS t ON true LEFT JOIN issued AS i ON true
"""  # noqa: S608 - table names from the models, values as parameters


_last_unreachable_warning = 0.0


def _queue_unreachable(exc: Exception) -> None:
    global _last_unreachable_warning
    if time.monotonic() - _last_unreachable_warning > 60:  # once a minute, not once a claim
        _last_unreachable_warning = time.monotonic()
        log.warning("claim queue unreachable, claims are decided one by one: %s", exc)


def _claim_in_one_statement(tenant: Tenant, template_id: int, member: Member, *, channel: str, key: str,
                            campaign_ref: str, granted_by, now: datetime, alone: bool) -> ClaimResult:
    """``alone``: no unit of work is open, so the statement runs as its own transaction in one round
    trip (``execute_alone``); anything it did not settle is then sorted out in a unit of its own."""
    code = new_coupon_code()
    params = {
        "tenant": tenant.pk, "template": template_id, "member": member.pk, "key": key, "now": now,
        "active": State.ACTIVE, "gated": channel in GATED_CHANNELS, "channel": channel, "code": code,
        "unused": Coupon.State.UNUSED, "campaign": campaign_ref, "granted_by": getattr(granted_by, "pk", granted_by),
    }
    if alone:
        row = execute_alone(tenant.pk, _CLAIM_SQL, params)
    else:
        with prepared_cursor() as cursor:
            cursor.execute(_CLAIM_SQL, params)
            row = cursor.fetchone()
    member_there, prior_id, prior_template, counted, coupon_id, valid_from, valid_until, *template_row = row
    if not member_there:
        raise MemberNotFound(member.pk)
    if coupon_id is None:
        # Rare: a refusal, a replay, or beaten to the insert by a retry with the same key. Put back what
        # was counted first; ``alone``, the claim has committed, so in a transaction of its own that
        # the refusal's error cannot roll back.
        taken = template_row[0] is not None
        if counted or taken:
            with tenant_context(tenant) if alone else nullcontext():
                _give_back(tenant, template_id, member.pk, counter=counted, stock=taken)
        with tenant_context(tenant) if alone else nullcontext():
            return _refused_or_replayed(tenant, template_id, member, key=key, channel=channel, now=now,
                                        prior=(prior_id, prior_template), counted=counted)
    coupon = issued_coupon(coupon_id=coupon_id, template=template_from_row(template_row), member=member, code=code,
                           claimed_at=now, valid_from=valid_from, valid_until=valid_until, channel=channel,
                           campaign_ref=campaign_ref, granted_by_id=getattr(granted_by, "pk", granted_by),
                           idempotency_key=key)
    return ClaimResult(coupon, True)


def _refused_or_replayed(tenant: Tenant, template_id: int, member: Member, *, key: str, channel: str,
                         now: datetime, prior: tuple, counted: bool) -> ClaimResult:
    """What a claim statement that issued nothing means (its counts already given back)."""
    prior_id, prior_template = prior
    if prior_id is not None:
        if prior_template != template_id:
            raise CouponError("idempotency_conflict", coupon_id=prior_id)
        return ClaimResult(queries.get_coupon(prior_id), False)
    replay = _replayed(member, key, template_id)
    if replay is not None:
        return ClaimResult(replay, False)
    template = queries.get_template(template_id)
    check_claimable(template, channel, now)
    if template.per_member_limit and not counted:
        raise CouponError("limit_reached", limit=template.per_member_limit)
    raise CouponError("sold_out")


def _give_back(tenant: Tenant, template_id: int, member_id: int, *, counter: bool, stock: bool) -> None:
    """Undo a claim statement's counter bump and stock (in its transaction, or in one right after)."""
    if counter:
        mine = ClaimCounter.objects.filter(template_id=template_id, member_id=member_id)
        mine.update(count=F("count") - 1)
        mine.filter(count__lte=0).delete()  # as if never counted (a concurrent bump keeps it)
    if stock:
        CouponTemplate.objects.filter(pk=template_id).update(issued=F("issued") - 1)


def grant_coupon(tenant: Tenant, template_id: int, member: Member, *, actor, reason: str,
                 channel: str = Channel.STAFF, idempotency_key: str = "", campaign_ref: str = "") -> Coupon:
    """A staff (or campaign) grant to one member, audited with who, what, to whom and why."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": [_("请填写发放原因。")]})
    if member.tenant_id != tenant.pk:
        raise NotFound(member.pk)
    with within(tenant):
        result = claim_coupon(tenant, template_id, member, channel=channel, idempotency_key=idempotency_key,
                              campaign_ref=campaign_ref, granted_by=actor)
        if result.created:
            audit(tenant, "coupon.granted", actor=actor, target=f"member:{member.pk}",
                  openid=member.openid, template=result.coupon.template_id, coupon=result.coupon.code,
                  channel=channel, reason=reason)
        return result.coupon


def grant_new_member_coupon(tenant: Tenant, member: Member) -> Coupon | None:
    """The tenant's welcome coupon, once per member, if one is set and still claimable."""
    with within(tenant):
        rules = queries.loyalty_settings()
        if rules.new_member_template_id is None:
            return None
        try:
            with transaction.atomic():
                return claim_coupon(tenant, rules.new_member_template_id, member, channel=Channel.NEW_MEMBER,
                                    idempotency_key="new-member").coupon
        except (CouponError, NotFound):
            return None  # a sold-out or paused welcome coupon must not break the login


def revoke_coupon(tenant: Tenant, coupon_id: int, *, actor, reason: str) -> Coupon:
    """Take back an unused coupon (a coupon locked by an order or used cannot be revoked)."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": [_("请填写撤销原因。")]})
    with within(tenant):
        coupon = queries.get_coupon(coupon_id, for_update=True)
        if coupon.state == Coupon.State.REVOKED:
            return coupon
        if coupon.state != Coupon.State.UNUSED:
            raise CouponError(f"coupon_{coupon.state}")
        coupon.state = Coupon.State.REVOKED
        coupon.revoked_at = timezone.now()
        coupon.save(update_fields=["state", "revoked_at"])
        audit(tenant, "coupon.revoked", actor=actor, target=f"member:{coupon.member_id}", coupon=coupon.code,
              template=coupon.template_id, reason=reason)
        return coupon


# --- the order lifecycle: lock → consume, or release ---------------------------------------------

def _coupon_id(coupon: Coupon | int) -> int:
    return coupon.pk if isinstance(coupon, Coupon) else int(coupon)


def lock_coupon(tenant: Tenant, coupon: Coupon | int, order_ref: str, *, discount_fen: int | None = None,
                now: datetime | None = None) -> Coupon:
    """Reserve the coupon for an order. Locking again for the same order is a no-op."""
    if not order_ref:
        raise ValueError("order_ref is required")
    now = now or timezone.now()
    with within(tenant):
        c = queries.get_coupon(_coupon_id(coupon), for_update=True)
        if c.order_ref == order_ref and c.state in (Coupon.State.LOCKED, Coupon.State.USED):
            return c
        if c.state == Coupon.State.LOCKED:
            raise CouponError("coupon_locked")
        if c.state != Coupon.State.UNUSED:
            raise CouponError(f"coupon_{c.state}")
        if c.valid_until is not None and c.valid_until <= now:
            raise CouponError("coupon_expired")
        if c.valid_from > now:
            raise CouponError("not_yet_valid", valid_from=c.valid_from.isoformat())
        c.state = Coupon.State.LOCKED
        c.order_ref = order_ref
        c.locked_at = now
        c.discount_fen = discount_fen
        c.save(update_fields=["state", "order_ref", "locked_at", "discount_fen"])
        return c


def consume_coupon(tenant: Tenant, coupon: Coupon | int, order_ref: str, *, discount_fen: int | None = None,
                   now: datetime | None = None) -> Coupon:
    """The order was paid: the coupon is used. Consuming again for the same order is a no-op.

    A coupon locked before it expired is still consumed: the member paid while holding it.
    """
    now = now or timezone.now()
    with within(tenant):
        c = queries.get_coupon(_coupon_id(coupon), for_update=True)
        if c.state == Coupon.State.USED and c.order_ref == order_ref:
            return c
        if c.state != Coupon.State.LOCKED or c.order_ref != order_ref:
            raise CouponError("not_locked", state=c.state)
        c.state = Coupon.State.USED
        c.used_at = now
        if discount_fen is not None:
            c.discount_fen = discount_fen
        c.save(update_fields=["state", "used_at", "discount_fen"])
        return c


def release_coupon(tenant: Tenant, coupon: Coupon | int, order_ref: str, *, now: datetime | None = None) -> Coupon:
    """The order was closed unpaid: give the coupon back (expired if its time ran out meanwhile).

    Releasing again, or releasing a coupon this order does not hold, changes nothing.
    """
    now = now or timezone.now()
    with within(tenant):
        c = queries.get_coupon(_coupon_id(coupon), for_update=True)
        if c.state != Coupon.State.LOCKED or c.order_ref != order_ref:
            return c
        expired = c.valid_until is not None and c.valid_until <= now
        c.state = Coupon.State.EXPIRED if expired else Coupon.State.UNUSED
        c.order_ref = ""
        c.locked_at = None
        c.discount_fen = None
        c.save(update_fields=["state", "order_ref", "locked_at", "discount_fen"])
        return c


def expire_coupons(tenant: Tenant, *, now: datetime | None = None) -> int:
    """Mark unused coupons past their end as expired (locked ones wait for their order)."""
    now = now or timezone.now()
    with within(tenant):
        return Coupon.objects.filter(state=Coupon.State.UNUSED, valid_until__lte=now).update(
            state=Coupon.State.EXPIRED)
