"""Console — Coupons: templates and their funnel, grants with progress, revocation, points and tiers.

Runs inside the tenant context the console middleware opened; every change goes through an action.
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from campaigns import actions, queries
from campaigns.exceptions import CouponError, NotFound
from campaigns.forms import AdjustPointsForm, GrantForm, LoyaltyForm, RevokeForm, TemplateForm, TierForm
from campaigns.models import Coupon, CouponTemplate, GrantJob, Tier
from profiles.models import Member, Tag
from tenants import roles
from tenants.console_access import require_change
from tenants.models import AuditEvent


def _template_or_404(template_id: int) -> CouponTemplate:
    try:
        return queries.get_template(template_id)
    except NotFound:
        raise Http404(_("没有这张优惠券")) from None


def _url(request, name: str, **kwargs) -> str:
    return reverse(f"coupons:{name}", kwargs={"tenant_slug": request.tenant.slug, **kwargs})


def _error_text(exc: CouponError | ValidationError) -> str:
    if isinstance(exc, CouponError):
        return exc.message
    return "；".join(m for ms in exc.message_dict.values() for m in ms) if hasattr(exc, "error_dict") else \
        "；".join(exc.messages)


@require_GET
def index(request):
    state = request.GET.get("state") or ""
    templates = CouponTemplate.objects.order_by("-created_at", "-id")
    if state in CouponTemplate.State.values:
        templates = templates.filter(state=state)
    templates = list(templates[:200])
    ids = [t.pk for t in templates]
    funnel = queries.template_funnel(ids)
    cost = queries.discount_cost(ids)
    revenue = queries.template_revenue(ids)
    rows = [{"t": t, "f": funnel.get(t.pk, {}), "cost": cost.get(t.pk, 0),
             "revenue": revenue.get(t.pk, queries.TemplateRevenue())} for t in templates]
    return render(request, "coupons/index.html", {"rows": rows, "state": state,
                                                  "states": CouponTemplate.State.choices})


def _save_template(request, template: CouponTemplate | None):
    form = TemplateForm(request.POST or None, template=template)
    if request.method == "POST" and roles.can_change(request.membership.role) and form.is_valid():
        fields = form.action_fields()
        if template is not None and form.frozen:
            from campaigns.actions.coupons import FROZEN_AFTER_ISSUE

            fields = {k: v for k, v in fields.items() if k not in FROZEN_AFTER_ISSUE}
        if not form.errors:
            try:
                if template is None:
                    template = actions.create_coupon_template(request.tenant, actor=request.user,
                                                              activate=bool(request.POST.get("activate")), **fields)
                    messages.success(request, _("已创建优惠券“%(n)s”。") % {"n": template.name})
                else:
                    actions.update_coupon_template(request.tenant, template.pk, actor=request.user, **fields)
                    messages.success(request, _("已保存。"))
                return redirect(_url(request, "detail", template_id=template.pk))
            except ValidationError as exc:
                form.add_action_errors(exc)
    return render(request, "coupons/template_form.html", {"form": form, "template": template})


def create(request):
    return _save_template(request, None)


def edit(request, template_id: int):
    return _save_template(request, _template_or_404(template_id))


def _grant_form(data=None, files=None):
    tiers = list(Tier.objects.order_by("threshold").values_list("name", flat=True))
    tags = list(Tag.objects.order_by("name").values_list("pk", "name"))
    return GrantForm(data, files, tiers=tiers, tags=tags, initial={"nonce": uuid.uuid4().hex})


@require_GET
def detail(request, template_id: int):
    template = _template_or_404(template_id)
    funnel = queries.template_funnel([template.pk]).get(template.pk, {s: 0 for s in Coupon.State.values})
    return render(request, "coupons/detail.html", {
        "template": template, "funnel": funnel, "cost": queries.discount_cost([template.pk]).get(template.pk, 0),
        "revenue": queries.template_revenue([template.pk]).get(template.pk, queries.TemplateRevenue()),
        "grant_form": _grant_form(), "revoke_form": RevokeForm(),
        "jobs": GrantJob.objects.filter(template=template).select_related("created_by").order_by("-created_at")[:10],
        "coupons": Coupon.objects.filter(template=template).select_related("member", "granted_by")
        .order_by("-claimed_at", "-id")[:50],
        "next_states": sorted(actions.coupons.TRANSITIONS.get(template.state, ())),
        "state_labels": dict(CouponTemplate.State.choices),
    })


@require_POST
@require_change
def change_state(request, template_id: int):
    template = _template_or_404(template_id)
    try:
        actions.set_template_state(request.tenant, template.pk, request.POST.get("state", ""), actor=request.user)
    except CouponError as exc:
        messages.error(request, exc.message)
    return redirect(_url(request, "detail", template_id=template.pk))


@require_POST
@require_change
def grant(request, template_id: int):
    template = _template_or_404(template_id)
    form = _grant_form(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, "；".join(e for es in form.errors.values() for e in es))
        return redirect(_url(request, "detail", template_id=template.pk))
    d = form.cleaned_data
    key = f"console:{d.get('nonce') or uuid.uuid4().hex}"[:100]
    try:
        if d["mode"] == "one":
            member = Member.objects.filter(openid=d["openid"].strip(), erased_at__isnull=True).first()
            if member is None:
                messages.error(request, _("没有 openid 为 %(o)s 的会员。") % {"o": d["openid"].strip()})
                return redirect(_url(request, "detail", template_id=template.pk))
            coupon = actions.grant_coupon(request.tenant, template.pk, member, actor=request.user,
                                          reason=d["reason"], idempotency_key=key)
            messages.success(request, _("已发放给 %(o)s，券码 %(c)s。") % {"o": member.openid, "c": coupon.code})
            return redirect(_url(request, "detail", template_id=template.pk))
        if d["mode"] == "list":
            job = actions.start_grant_job(request.tenant, template.pk, actor=request.user, reason=d["reason"],
                                          openids=actions.parse_openids(d["list_text"]), idempotency_key=key)
        else:
            job = actions.start_grant_job(request.tenant, template.pk, actor=request.user, reason=d["reason"],
                                          tier=d.get("tier") or None, tag_ids=[int(t) for t in d.get("tags") or []],
                                          idempotency_key=key)
    except (CouponError, ValidationError) as exc:
        messages.error(request, _error_text(exc))
        return redirect(_url(request, "detail", template_id=template.pk))
    return redirect(_url(request, "job", job_id=job.pk))


@require_GET
def job(request, job_id: int):
    try:
        job = queries.get_grant_job(job_id)
    except NotFound:
        raise Http404(_("没有这个发放任务")) from None
    if request.GET.get("format") == "json":
        return JsonResponse({"state": job.state, "total": job.total, "processed": job.processed,
                             "granted": job.granted, "skipped_limit": job.skipped_limit,
                             "skipped_stock": job.skipped_stock, "not_found": job.not_found,
                             "percent": job.percent, "error": job.error})
    return render(request, "coupons/job.html", {"job": job, "running": job.state in ("pending", "running")})


@require_POST
@require_change
def revoke(request, coupon_id: int):
    try:
        coupon = queries.get_coupon(coupon_id)
    except NotFound:
        raise Http404(_("没有这张优惠券")) from None
    form = RevokeForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("请填写撤销原因。"))
    else:
        try:
            actions.revoke_coupon(request.tenant, coupon.pk, actor=request.user, reason=form.cleaned_data["reason"])
            messages.success(request, _("已撤销券 %(c)s。") % {"c": coupon.code})
        except CouponError as exc:
            messages.error(request, exc.message)
    return redirect(_url(request, "detail", template_id=coupon.template_id))


def loyalty(request):
    templates = list(CouponTemplate.objects.exclude(state=CouponTemplate.State.ENDED).order_by("name"))
    rules = queries.loyalty_settings()
    initial = {"points_per_yuan": rules.points_per_yuan, "tier_basis": rules.tier_basis,
               "new_member_template": rules.new_member_template_id,
               "points_expire_months": rules.points_expire_months,
               "return_coupon_on_refund": rules.return_coupon_on_refund}
    form = LoyaltyForm(None, templates=templates, initial=initial)
    tier_form = TierForm(None, templates=templates)
    if request.method == "POST":
        if not roles.can_change(request.membership.role):
            return render(request, "console/forbidden.html", {"tenant": request.tenant}, status=403)
        if request.POST.get("form") == "rules":
            form = LoyaltyForm(request.POST, templates=templates)
            if form.is_valid():
                d = form.cleaned_data
                try:
                    actions.save_loyalty_settings(request.tenant, actor=request.user,
                                                  points_per_yuan=d["points_per_yuan"], tier_basis=d["tier_basis"],
                                                  new_member_template_id=d["new_member_template"],
                                                  points_expire_months=d.get("points_expire_months"),
                                                  return_coupon_on_refund=d.get("return_coupon_on_refund") or None)
                    messages.success(request, _("积分规则已保存。"))
                    return redirect(_url(request, "loyalty"))
                except (ValidationError, NotFound) as exc:
                    form.add_error(None, _error_text(exc) if isinstance(exc, ValidationError) else _("没有这张券。"))
        else:
            tier_form = TierForm(request.POST, templates=templates)
            if tier_form.is_valid():
                d = tier_form.cleaned_data
                tier_id = request.POST.get("tier_id")
                try:
                    actions.save_tier(request.tenant, actor=request.user, name=d["name"], threshold=d["threshold"],
                                      earn_multiplier_pct=d["earn_multiplier_pct"],
                                      monthly_template_id=d["monthly_template"], benefits=d["benefits"],
                                      tier_id=int(tier_id) if tier_id and tier_id.isdigit() else None)
                    from campaigns.tasks import evaluate_tiers
                    from tenants.tasks import enqueue_on_commit

                    enqueue_on_commit(evaluate_tiers, request.tenant.pk)
                    messages.success(request, _("等级已保存，会员等级将重新计算。"))
                    return redirect(_url(request, "loyalty"))
                except (ValidationError, Tier.DoesNotExist) as exc:
                    if isinstance(exc, ValidationError):
                        for field, ms in exc.message_dict.items():
                            for m in ms:
                                tier_form.add_error(field if field in tier_form.fields else None, m)
                    else:
                        tier_form.add_error(None, _("没有这个等级。"))
    return render(request, "coupons/loyalty.html", {"form": form, "tier_form": tier_form,
                                                    "tiers": queries.tiers(), "rules": rules})


def member_ledger(request, member_id: int):
    try:
        member = queries.get_member(member_id)
    except NotFound:
        raise Http404(_("没有这个会员")) from None
    form = AdjustPointsForm(request.POST or None)
    if request.method == "POST":
        if not roles.can_change(request.membership.role):
            return render(request, "console/forbidden.html", {"tenant": request.tenant}, status=403)
        if form.is_valid():
            try:
                actions.adjust_points(request.tenant, member, form.cleaned_data["delta"], actor=request.user,
                                      note=form.cleaned_data["note"])
                messages.success(request, _("积分已调整。"))
                return redirect(_url(request, "ledger", member_id=member.pk))
            except (CouponError, ValidationError) as exc:
                form.add_error(None, _error_text(exc))
    grants = AuditEvent.objects.filter(target=f"member:{member.pk}").select_related("actor").order_by("-id")[:50]
    return render(request, "coupons/ledger.html", {
        "member": member, "entries": queries.ledger(member), "form": form, "grants": grants,
        "coupons": queries.member_coupons(member)[:50], "rules": queries.loyalty_settings(),
    })
