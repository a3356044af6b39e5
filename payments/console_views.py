"""Console pages for orders: the list with filters, an order with its history, notify log and refunds,
the reconciliation report. The console middleware runs each view in ``request.tenant``'s context.

That context is one transaction, and a WeChat call must not sit inside one: views that need
WeChat (refund, query, sandbox pay) record what they can, then hand the call to a task sent on
commit (eager in the demo, so it still happens before the redirect is followed).
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal, InvalidOperation

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpResponseForbidden, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from payments import actions, queries, tasks
from payments.exceptions import OrderNotFound, PaymentsError
from payments.models import Order, OrderTransition
from tenants import roles
from tenants.tasks import enqueue_on_commit

PAGE_SIZE = 50


class OrderFilters(forms.Form):
    state = forms.ChoiceField(label=gettext_lazy("状态"), required=False,
                              choices=[("", gettext_lazy("全部"))] + list(Order.State.choices))
    day_from = forms.DateField(label=gettext_lazy("下单日期从"), required=False,
                               widget=forms.DateInput(attrs={"type": "date"}))
    day_to = forms.DateField(label=gettext_lazy("至"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    member = forms.CharField(label=gettext_lazy("会员（ID 或 OpenID）"), required=False, max_length=64)
    coupon = forms.CharField(label=gettext_lazy("优惠券（券码或模板 ID）"), required=False, max_length=32)
    campaign = forms.CharField(label=gettext_lazy("营销活动"), required=False, max_length=64)
    attention = forms.BooleanField(label=gettext_lazy("只看待人工处理"), required=False)


class RefundForm(forms.Form):
    amount = forms.CharField(label=gettext_lazy("退款金额（元）"), max_length=12)
    reason = forms.CharField(label=gettext_lazy("退款原因"), max_length=80, required=False)

    def clean_amount(self) -> int:
        try:
            yuan = Decimal(self.cleaned_data["amount"].strip())
        except InvalidOperation:
            raise forms.ValidationError(_("请输入金额，例如 12.34。")) from None
        fen = yuan * 100
        if fen != fen.to_integral_value() or fen <= 0:
            raise forms.ValidationError(_("金额必须大于 0，最多两位小数。"))
        return int(fen)


def _with_pretty(notification):
    # The decrypted content, as WeChat sent it; it never holds a key (the raw body is only ciphertext).
    notification.pretty = json.dumps(notification.resource, ensure_ascii=False, indent=2, sort_keys=True)
    return notification


def _order_or_404(pk: int) -> Order:
    try:
        return queries.get_order_by_pk(pk)
    except OrderNotFound:
        raise Http404(_("没有这个订单")) from None


def _detail_url(request, order_pk: int) -> str:
    return reverse("orders:detail", kwargs={"tenant_slug": request.tenant.slug, "pk": order_pk})


@require_GET
def order_index(request):
    form = OrderFilters(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    qs = queries.filter_orders(
        state=filters.get("state") or "", day_from=filters.get("day_from"), day_to=filters.get("day_to"),
        member=(filters.get("member") or "").strip(), coupon=(filters.get("coupon") or "").strip().upper(),
        campaign=(filters.get("campaign") or "").strip(), attention=bool(filters.get("attention")),
    )
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "orders/index.html", {
        "form": form, "page": page, "query": query.urlencode(),
        "flagged": queries.flagged_notifications().count(),
    })


@require_GET
def order_detail(request, pk: int):
    order = _order_or_404(pk)
    can_refund = roles.can_refund(request.membership.role)
    return render(request, "orders/detail.html", {
        "order": order,
        "lines": order.lines.order_by("pk"),
        "transitions": OrderTransition.objects.filter(order=order).select_related("actor").order_by("created_at", "pk"),
        "notifications": [_with_pretty(n) for n in queries.order_notifications(order)],
        "refunds": order.refunds.select_related("requested_by").order_by("created_at"),
        "can_refund": can_refund and order.state in (Order.State.PAID, Order.State.PARTIALLY_REFUNDED),
        "refund_form": RefundForm(initial={"amount": f"{order.refundable_fen / 100:.2f}"}),
        "can_change": roles.can_change(request.membership.role),
        "sandbox": settings.WECHAT_SANDBOX,
    })


@require_POST
def order_refund(request, pk: int):
    if not roles.can_refund(request.membership.role):
        return HttpResponseForbidden(_("只有所有者和经理可以退款。"))
    order = _order_or_404(pk)
    form = RefundForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return HttpResponseRedirect(_detail_url(request, order.pk))
    try:
        refund = actions.request_refund(request.tenant, order.pk, amount_fen=form.cleaned_data["amount"],
                                        reason=form.cleaned_data["reason"], actor=request.user)
    except PaymentsError as exc:
        messages.error(request, exc.message)
    else:
        enqueue_on_commit(tasks.submit_refund, request.tenant.pk, refund.pk)
        messages.success(request, _("已提交退款申请 %(no)s，结果以微信支付为准。") % {"no": refund.out_refund_no})
    return HttpResponseRedirect(_detail_url(request, order.pk))


@require_POST
def order_sync(request, pk: int):
    """Ask WeChat now where an unpaid order stands (a missed notify)."""
    order = _order_or_404(pk)
    enqueue_on_commit(tasks.query_order, request.tenant.pk, order.pk)
    messages.info(request, _("已向微信支付查询订单状态。"))
    return HttpResponseRedirect(_detail_url(request, order.pk))


@require_POST
def notification_resolve(request, pk: int):
    if not roles.can_refund(request.membership.role):
        return HttpResponseForbidden(_("只有所有者和经理可以处理支付异常。"))
    notification = actions.resolve_notification(request.tenant, pk, actor=request.user)
    if notification.order_id:
        return HttpResponseRedirect(_detail_url(request, notification.order_id))
    return HttpResponseRedirect(reverse("orders:reconciliation", kwargs={"tenant_slug": request.tenant.slug}))


@require_GET
def reconciliation(request):
    return render(request, "orders/reconciliation.html", {
        "checks": queries.recent_bill_checks(),
        "flagged": queries.flagged_notifications()[:200],
    })


@require_POST
def bill_check_now(request):
    if not roles.can_refund(request.membership.role):
        return HttpResponseForbidden(_("只有所有者和经理可以对账。"))
    try:
        day = date.fromisoformat(request.POST.get("day", ""))
    except ValueError:
        messages.error(request, _("请选择日期。"))
    else:
        try:
            check = actions.check_trade_bill(request.tenant, day)
        except PaymentsError as exc:
            messages.error(request, exc.message)
        else:
            messages.info(request, _("%(d)s 对账完成：%(n)d 处差异。") % {"d": day, "n": len(check.differences)})
    return HttpResponseRedirect(reverse("orders:reconciliation", kwargs={"tenant_slug": request.tenant.slug}))


@require_POST
def sandbox_pay(request, pk: int):
    """Sandbox only: play the customer paying, so the sandbox sends the signed notify WeChat would."""
    if not settings.WECHAT_SANDBOX:
        raise Http404()
    from wechat.sandbox import pay as sandbox

    order = _order_or_404(pk)
    mchid = actions.gateway.credentials(request.tenant).mchid
    # After commit: the notify is served by another request that must see this one finished.
    transaction.on_commit(lambda: sandbox.simulate_payment(mchid, order.out_trade_no))
    messages.info(request, _("沙箱已模拟付款并发送支付通知。"))
    return HttpResponseRedirect(_detail_url(request, order.pk))
