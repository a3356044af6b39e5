"""What issuing one coupon means, whichever path issues it: a claim alone, a batch of claims, a grant.

The rules a template sets for a new coupon (may it be issued now, through this channel; from when
to when is it valid), the answer a claim gives, and the template row as claim statements return it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection

from campaigns import queries
from campaigns.exceptions import CouponError
from campaigns.models import Channel, Coupon, CouponTemplate

# The merchant picks these per template; new-member and tier coupons are chosen in the loyalty
# settings themselves, so choosing the template there is the permission.
GATED_CHANNELS = {Channel.SELF_CLAIM, Channel.CAMPAIGN, Channel.STAFF, Channel.POINTS}


@dataclass(frozen=True)
class ClaimResult:
    coupon: Coupon
    created: bool  # False when an Idempotency-Key replay returned the coupon claimed before


def validity_for(template: CouponTemplate, now: datetime) -> tuple[datetime, datetime | None]:
    if template.valid_days:
        start = now + timedelta(days=template.start_delay_days)
        end = start + timedelta(days=template.valid_days)
        if template.valid_until is not None:
            end = min(end, template.valid_until)
        return start, end
    return max(template.valid_from or now, now), template.valid_until


def check_claimable(template: CouponTemplate, channel: str, now: datetime) -> None:
    """Raises the refusal a claim of ``template`` through ``channel`` gets at ``now``, if any."""
    if not queries.is_claimable_now(template, now):
        raise CouponError("not_active", template_state=template.state)
    if channel in GATED_CHANNELS and template.channels and channel not in template.channels:
        raise CouponError("channel_not_allowed", channel=channel)
    if template.stock is not None and template.issued >= template.stock:
        raise CouponError("sold_out")


TEMPLATE_FIELDS = CouponTemplate._meta.concrete_fields
TEMPLATE_COLUMNS = [f.column for f in TEMPLATE_FIELDS]


def template_from_row(values: list | tuple) -> CouponTemplate:
    """A template from its columns in ``TEMPLATE_COLUMNS`` order, as a raw cursor returns them."""
    # A raw cursor skips the fields' converters (JSON arrives as text).
    values = [f.from_db_value(v, None, connection) if v is not None and hasattr(f, "from_db_value") else v
              for f, v in zip(TEMPLATE_FIELDS, values, strict=True)]
    return CouponTemplate.from_db(connection.alias, [f.attname for f in TEMPLATE_FIELDS], values)


def issued_coupon(*, coupon_id: int, template: CouponTemplate, member, code: str, claimed_at: datetime,
                  valid_from: datetime, valid_until: datetime | None, channel: str, campaign_ref: str = "",
                  granted_by_id: int | None = None, idempotency_key: str = "") -> Coupon:
    """The instance of a coupon a statement has just inserted, without reading it back."""
    coupon = Coupon(id=coupon_id, tenant_id=template.tenant_id, template=template, member=member, code=code,
                    state=Coupon.State.UNUSED, claimed_at=claimed_at, valid_from=valid_from,
                    valid_until=valid_until, channel=channel, campaign_ref=campaign_ref,
                    granted_by_id=granted_by_id, idempotency_key=idempotency_key)
    coupon._state.adding = False
    return coupon
