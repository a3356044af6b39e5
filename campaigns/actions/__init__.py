"""State changes of the campaigns app; views, API, commands and tasks all call these."""

from campaigns.actions.coupons import (
    ClaimResult,
    claim_coupon,
    consume_coupon,
    create_coupon_template,
    expire_coupons,
    grant_coupon,
    grant_new_member_coupon,
    lock_coupon,
    release_coupon,
    revoke_coupon,
    set_template_state,
    update_coupon_template,
)
from campaigns.actions.grants import parse_openids, run_grant_chunk, run_grant_job, start_grant_job
from campaigns.actions.points import (
    adjust_points,
    change_points,
    earn_for_order,
    evaluate_tier,
    exchange_points_for_coupon,
    expire_points,
    expire_points_chunk,
    reverse_for_refund,
    save_loyalty_settings,
    save_tier,
)
from campaigns.actions.returns import CouponReturn, ReturnOutcome, return_coupon_for_refund

__all__ = [
    "ClaimResult", "CouponReturn", "ReturnOutcome", "adjust_points", "change_points", "claim_coupon",
    "consume_coupon", "create_coupon_template", "earn_for_order", "evaluate_tier", "exchange_points_for_coupon",
    "expire_coupons", "expire_points", "expire_points_chunk", "grant_coupon", "grant_new_member_coupon",
    "lock_coupon", "parse_openids", "release_coupon", "return_coupon_for_refund", "reverse_for_refund",
    "revoke_coupon", "run_grant_chunk", "run_grant_job", "save_loyalty_settings", "save_tier",
    "set_template_state", "start_grant_job", "update_coupon_template",
]
