"""Console pages of the catalogue: items (search, filter, edit), categories, CSV import with preview.

The uploaded CSV is kept in a temporary file named by a random token (remembered in the session),
so confirming the preview imports exactly the file that was previewed without uploading it again.
"""

from __future__ import annotations

import re
import secrets
import tempfile
import time
from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from catalog import actions, queries
from catalog.importing import import_items
from catalog.models import Category, Item
from tenants import roles
from tenants.console_access import require_change

PAGE_SIZE = 50
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
UPLOAD_TTL_SECONDS = 3600
SESSION_KEY = "catalog_import"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,64}")


def _url(request, name: str, **kwargs) -> str:
    return reverse(f"catalog:{name}", kwargs={"tenant_slug": request.tenant.slug, **kwargs})


# --- items ------------------------------------------------------------------------------------

class ItemFilterForm(forms.Form):
    q = forms.CharField(label=gettext_lazy("搜索 SKU 或名称"), required=False, max_length=64)
    category = forms.TypedChoiceField(label=gettext_lazy("分类"), coerce=int, required=False, empty_value=None)
    active = forms.ChoiceField(label=gettext_lazy("状态"), required=False, choices=[
        ("", gettext_lazy("全部")), ("yes", gettext_lazy("在售")), ("no", gettext_lazy("停售"))])

    def __init__(self, data, *, categories):
        super().__init__(data)
        self.fields["category"].choices = [("", _("全部"))] + [(c.pk, c.name) for c in categories]


def item_list(request):
    form = ItemFilterForm(request.GET, categories=Category.objects.order_by("name"))
    form.is_valid()
    data = form.cleaned_data
    items = queries.search_items(q=data.get("q") or "", category_id=data.get("category"),
                                 active={"yes": True, "no": False}.get(data.get("active") or ""))
    page_obj = Paginator(items, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "catalog/items.html", {"form": form, "page_obj": page_obj, "query": query.urlencode()})


class ItemForm(forms.Form):
    sku = forms.CharField(label="SKU", max_length=64)
    name = forms.CharField(label=gettext_lazy("名称"), max_length=200)
    category = forms.TypedChoiceField(label=gettext_lazy("分类"), coerce=int)
    price_fen = forms.IntegerField(label=gettext_lazy("价格（分）"), min_value=0)
    active = forms.BooleanField(label=gettext_lazy("在售"), required=False, initial=True)

    def __init__(self, *args, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["category"].choices = [(c.pk, c.name) for c in Category.objects.order_by("name")]
        if editing:
            self.fields["sku"].disabled = True
            self.fields["sku"].help_text = _("SKU 创建后不能修改。")


@require_change
def item_create(request):
    form = ItemForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            item = actions.create_item(request.tenant, sku=data["sku"], name=data["name"],
                                       category_id=data["category"], price_fen=data["price_fen"],
                                       active=data["active"], actor=request.user)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, _("已添加商品 %(sku)s。") % {"sku": item.sku})
            return HttpResponseRedirect(_url(request, "index"))
    return render(request, "catalog/item_form.html", {"form": form, "item": None})


def item_edit(request, item_id: int):
    try:
        item = queries.get_item(item_id)
    except Item.DoesNotExist:
        raise Http404(_("没有这个商品")) from None
    initial = {"sku": item.sku, "name": item.name, "category": item.category_id, "price_fen": item.price_fen,
               "active": item.active}
    form = ItemForm(request.POST or None, initial=initial, editing=True)
    if request.method == "POST":
        if not roles.can_change(request.membership.role):
            return render(request, "console/forbidden.html", {"tenant": request.tenant}, status=403)
        if form.is_valid():
            data = form.cleaned_data
            try:
                actions.update_item(request.tenant, item.pk, name=data["name"], category_id=data["category"],
                                    price_fen=data["price_fen"], active=data["active"], actor=request.user)
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, _("已保存商品 %(sku)s。") % {"sku": item.sku})
                return HttpResponseRedirect(_url(request, "index"))
    return render(request, "catalog/item_form.html", {"form": form, "item": item})


# --- categories -------------------------------------------------------------------------------

class CategoryForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("分类名称"), max_length=64)


def category_list(request):
    form = CategoryForm(request.POST or None)
    if request.method == "POST":
        if not roles.can_change(request.membership.role):
            return render(request, "console/forbidden.html", {"tenant": request.tenant}, status=403)
        if form.is_valid():
            try:
                actions.create_category(request.tenant, form.cleaned_data["name"], actor=request.user)
            except ValidationError as exc:
                form.add_error("name", exc)
            else:
                return HttpResponseRedirect(_url(request, "categories"))
    return render(request, "catalog/categories.html",
                  {"form": form, "categories": queries.categories_with_counts()})


@require_POST
@require_change
def category_rename(request, category_id: int):
    try:
        actions.rename_category(request.tenant, category_id, request.POST.get("name", ""), actor=request.user)
    except Category.DoesNotExist:
        raise Http404(_("没有这个分类")) from None
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return HttpResponseRedirect(_url(request, "categories"))


# --- CSV import -------------------------------------------------------------------------------

def _upload_dir() -> Path:
    path = Path(getattr(settings, "CATALOG_IMPORT_DIR", "") or Path(tempfile.gettempdir()) / "jingzhun-imports")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def _upload_path(tenant, token: str) -> Path:
    # The tenant id in the name: a token leaked to another tenant's session still finds nothing.
    return _upload_dir() / f"{tenant.pk}-{token}.csv"


def _forget_stale_uploads() -> None:
    cutoff = time.time() - UPLOAD_TTL_SECONDS
    for path in _upload_dir().glob("*.csv"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except FileNotFoundError:
            pass


class UploadForm(forms.Form):
    file = forms.FileField(label=gettext_lazy("CSV 文件"),
                           help_text=gettext_lazy("列：sku,name,category,price_fen[,active]；UTF-8 编码；价格单位为分。"))

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise ValidationError(_("文件不能超过 %(mb)d MB。") % {"mb": MAX_UPLOAD_BYTES // (1024 * 1024)})
        return upload


@require_change
def import_upload(request):
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        _forget_stale_uploads()
        token = secrets.token_urlsafe(24)
        upload = form.cleaned_data["file"]
        with _upload_path(request.tenant, token).open("wb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
        request.session[SESSION_KEY] = {"token": token, "tenant": request.tenant.pk, "name": upload.name[:200]}
        return HttpResponseRedirect(_url(request, "import_preview", token=token))
    return render(request, "catalog/import_upload.html", {"form": form})


def _stored_upload(request, token: str) -> tuple[Path, str]:
    stored = request.session.get(SESSION_KEY) or {}
    path = _upload_path(request.tenant, token)
    if (not _TOKEN.fullmatch(token) or stored.get("token") != token or stored.get("tenant") != request.tenant.pk
            or not path.exists()):
        raise Http404(_("这个上传已过期，请重新上传。"))
    return path, stored.get("name", "")


@require_change
def import_preview(request, token: str):
    path, name = _stored_upload(request, token)
    if request.method == "POST":
        report = import_items(request.tenant, path.read_bytes(), actor=request.user, source=name)
        if report.applied:
            path.unlink(missing_ok=True)
            request.session.pop(SESSION_KEY, None)
            messages.success(request, _("导入完成：新增 %(c)d，更新 %(u)d，未变 %(n)d。")
                             % {"c": report.created, "u": report.updated, "n": report.unchanged})
            return HttpResponseRedirect(_url(request, "index"))
    else:
        report = import_items(request.tenant, path.read_bytes(), dry_run=True, source=name)
    return render(request, "catalog/import_preview.html", {
        "report": report, "token": token, "name": name, "errors": report.errors[:200],
        "more_errors": max(0, len(report.errors) - 200),
    })
