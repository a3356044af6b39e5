"""Console pages for members: the list (search, filters, keyset pages, CSV export), a member, tags.

The console middleware runs each view inside ``request.tenant``'s context and refuses analysts'
POSTs; ``require_change`` repeats the role check where a view writes.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponseRedirect, QueryDict, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from profiles import member_list, tagging
from profiles.computation.queries import profile_card
from profiles.member_list import (
    SEARCH_MODES,
    BadCursor,
    MemberFilters,
    attach_tag_names,
    estimate_count,
    iter_members,
    member_page,
)
from profiles.models import ConsentEvent, Member, MemberTag, Tag
from profiles.queries import MemberNotFound, get_member
from profiles.timeline import timeline
from tenants import roles
from tenants.actions import audit
from tenants.console_access import require_change

SHANGHAI = ZoneInfo("Asia/Shanghai")
CURSOR_PARAMS = ("after", "before")
EXPORT_CHUNK = 2000

SORT_CHOICES = [
    ("-last_seen", gettext_lazy("最近访问（新→旧）")),
    ("last_seen", gettext_lazy("最近访问（旧→新）")),
    ("-first_seen", gettext_lazy("首次访问（新→旧）")),
    ("first_seen", gettext_lazy("首次访问（旧→新）")),
    ("-points", gettext_lazy("积分（高→低）")),
    ("points", gettext_lazy("积分（低→高）")),
]
SEARCH_CHOICES = list(zip(SEARCH_MODES, [
    gettext_lazy("自动识别"), gettext_lazy("昵称开头"), gettext_lazy("昵称包含"), gettext_lazy("OpenID"),
    gettext_lazy("手机号（后 4 位或完整号码）"),
], strict=True))
YES_NO = [("", gettext_lazy("不限")), ("yes", gettext_lazy("是")), ("no", gettext_lazy("否"))]


class MemberFilterForm(forms.Form):
    q = forms.CharField(label=gettext_lazy("搜索"), required=False, max_length=64)
    search = forms.ChoiceField(label=gettext_lazy("搜索方式"), choices=SEARCH_CHOICES, required=False)
    tier = forms.CharField(label=gettext_lazy("等级"), required=False, max_length=32)
    tag = forms.TypedChoiceField(label=gettext_lazy("标签"), coerce=int, required=False, empty_value=None)
    seen_within_days = forms.IntegerField(label=gettext_lazy("最近 N 天内访问"), required=False,
                                          min_value=1, max_value=3650)
    seen_before = forms.DateField(label=gettext_lazy("最后访问早于"), required=False,
                                  widget=forms.DateInput(attrs={"type": "date"}))
    marketing = forms.ChoiceField(label=gettext_lazy("接收营销消息"), choices=YES_NO, required=False)
    profiling = forms.ChoiceField(label=gettext_lazy("允许个性化画像"), choices=YES_NO, required=False)
    sort = forms.ChoiceField(label=gettext_lazy("排序"), choices=SORT_CHOICES, required=False)

    def __init__(self, data, *, tags: list[Tag]):
        super().__init__(data)
        self.fields["tag"].choices = [("", _("不限"))] + [(t.pk, t.name) for t in tags]

    def filters(self) -> MemberFilters:
        """The valid part of the query: an invalid field is reported and ignored, never half-applied."""
        self.is_valid()
        data = self.cleaned_data

        def yes_no(name: str) -> bool | None:
            return {"yes": True, "no": False}.get(data.get(name) or "")

        return MemberFilters(
            q=data.get("q") or "",
            search=data.get("search") or "auto",
            tier=(data.get("tier") or "").strip(),
            tag_id=data.get("tag"),
            seen_within_days=data.get("seen_within_days"),
            seen_before=data.get("seen_before"),
            marketing=yes_no("marketing"),
            profiling=yes_no("profiling"),
            sort=data.get("sort") or "-last_seen",
        )


def _filter_form(params: QueryDict) -> MemberFilterForm:
    return MemberFilterForm(params, tags=list(Tag.objects.order_by("name")))


def _query_without_cursor(params: QueryDict) -> str:
    query = params.copy()
    for name in (*CURSOR_PARAMS, "csrfmiddlewaretoken", "tag_to_add"):
        query.pop(name, None)
    return query.urlencode()


@require_GET
def member_index(request):
    form = _filter_form(request.GET)
    filters = form.filters()
    after, before = request.GET.get("after", ""), request.GET.get("before", "")
    try:
        page = member_page(filters, after=after, before=before, size=member_list.PAGE_SIZE)
    except BadCursor:
        # A mangled or stale link: start over rather than guess a position.
        after = before = ""
        page = member_page(filters)
    attach_tag_names(page.members)
    first_page = not after and not before
    if first_page and page.next_cursor is None:
        count = len(page.members)
        count_exact = True
    else:
        estimate = estimate_count(filters)
        count, count_exact = estimate.value, estimate.exact
    return render(request, "members/list.html", {
        "form": form,
        "page": page,
        "members": page.members,
        "query": _query_without_cursor(request.GET),
        "first_page": first_page,
        "count": count,
        "count_exact": count_exact,
        "tags": form.fields["tag"].choices[1:],
    })


class _Echo:
    def write(self, value: str) -> str:
        return value


EXPORT_HEADER = ["id", "openid", "nickname", "phone", "tier", "points", "tags", "consent_marketing",
                 "consent_profiling", "first_seen_at", "last_seen_at"]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:
    """Text cells that a spreadsheet would run as a formula get a leading apostrophe."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _time(value) -> str:
    return timezone.localtime(value, SHANGHAI).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def export_rows(tenant, filters: MemberFilters) -> Iterator[str]:
    """CSV text in chunks; each chunk re-enters the tenant (the request's context has closed by then)."""
    writer = csv.writer(_Echo())
    yield "\ufeff" + writer.writerow(EXPORT_HEADER)
    for chunk in iter_members(tenant, filters, chunk=EXPORT_CHUNK, with_tags=True):
        yield "".join(writer.writerow([
            m.pk, m.openid, _cell(m.nickname), m.phone_masked, _cell(m.tier), m.points, _cell("|".join(m.tag_names)),
            int(m.consent_marketing), int(m.consent_profiling), _time(m.first_seen_at), _time(m.last_seen_at),
        ]) for m in chunk)


@require_GET
def member_export(request):
    filters = _filter_form(request.GET).filters()
    audit(request.tenant, "members.exported", actor=request.user, target="members.csv",
          filters=tagging.describe_filters(filters))
    stamp = timezone.localtime(timezone.now(), SHANGHAI).strftime("%Y%m%d-%H%M")
    response = StreamingHttpResponse(export_rows(request.tenant, filters), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="members-{request.tenant.slug}-{stamp}.csv"'
    response["Cache-Control"] = "no-store"
    return response


def _list_url(request, query: str) -> str:
    url = reverse("members:index", kwargs={"tenant_slug": request.tenant.slug})
    return f"{url}?{query}" if query else url


@require_POST
@require_change
def member_bulk_tag(request):
    query = request.POST.get("query", "")
    filters = _filter_form(QueryDict(query)).filters()
    try:
        tag_id = int(request.POST.get("tag_to_add", ""))
        added = tagging.bulk_tag(request.tenant, filters, tag_id, actor=request.user)
    except (ValueError, tagging.TagNotFound):
        messages.error(request, _("请选择一个标签。"))
    else:
        messages.success(request, _("已为 %(n)d 位会员加上标签。") % {"n": added})
    return HttpResponseRedirect(_list_url(request, query))


def _member_or_404(member_id: int) -> Member:
    try:
        return get_member(member_id)
    except MemberNotFound:
        raise Http404(_("没有这位会员")) from None


@require_GET
def member_detail(request, member_id: int):
    member = _member_or_404(member_id)
    member_tag_ids = set(MemberTag.objects.filter(member=member).values_list("tag_id", flat=True))
    all_tags = list(Tag.objects.order_by("name"))
    return render(request, "members/detail.html", {
        "member": member,
        "member_tags": [t for t in all_tags if t.pk in member_tag_ids],
        "other_tags": [t for t in all_tags if t.pk not in member_tag_ids],
        "consents": ConsentEvent.objects.filter(member=member).order_by("-created_at", "-pk")[:100],
        "timeline": timeline(member),
        "profile_card": profile_card(member),
    })


def _member_url(request, member_id: int) -> str:
    return reverse("members:detail", kwargs={"tenant_slug": request.tenant.slug, "member_id": member_id})


@require_POST
@require_change
def member_tag_add(request, member_id: int):
    _member_or_404(member_id)
    try:
        tagging.tag_member(request.tenant, member_id, int(request.POST.get("tag", "")), actor=request.user)
    except (ValueError, tagging.TagNotFound):
        messages.error(request, _("请选择一个标签。"))
    return HttpResponseRedirect(_member_url(request, member_id))


@require_POST
@require_change
def member_tag_remove(request, member_id: int, tag_id: int):
    _member_or_404(member_id)
    try:
        tagging.untag_member(request.tenant, member_id, tag_id, actor=request.user)
    except tagging.TagNotFound:
        raise Http404(_("没有这个标签")) from None
    return HttpResponseRedirect(_member_url(request, member_id))


class TagForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("标签名称"), max_length=32)


def _tags_url(request) -> str:
    return reverse("members:tags", kwargs={"tenant_slug": request.tenant.slug})


def tag_list(request):
    form = TagForm(request.POST or None)
    if request.method == "POST":
        if not roles.can_change(request.membership.role):
            return render(request, "console/forbidden.html", {"tenant": request.tenant}, status=403)
        if form.is_valid():
            try:
                tag = tagging.create_tag(request.tenant, form.cleaned_data["name"], actor=request.user)
            except ValidationError as exc:
                form.add_error("name", exc)
            else:
                messages.success(request, _("已创建标签“%(name)s”。") % {"name": tag.name})
                return HttpResponseRedirect(_tags_url(request))
    return render(request, "members/tags.html", {"form": form, "tags": tagging.tags_with_counts()})


@require_POST
@require_change
def tag_rename(request, tag_id: int):
    try:
        tag = tagging.rename_tag(request.tenant, tag_id, request.POST.get("name", ""), actor=request.user)
    except tagging.TagNotFound:
        raise Http404(_("没有这个标签")) from None
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, _("标签已改名为“%(name)s”。") % {"name": tag.name})
    return HttpResponseRedirect(_tags_url(request))


@require_POST
@require_change
def tag_delete(request, tag_id: int):
    try:
        carried = tagging.delete_tag(request.tenant, tag_id, actor=request.user)
    except tagging.TagNotFound:
        raise Http404(_("没有这个标签")) from None
    messages.success(request, _("标签已删除（%(n)d 位会员不再带有它）。") % {"n": carried})
    return HttpResponseRedirect(_tags_url(request))
