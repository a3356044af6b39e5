"""The platform operator's view of tenants under /ops/ (see tenants.ops_site).

Changes go through tenants.actions, as in the console: they validate and write the tenant's audit
log. Secrets are write-only here too: the forms have separate "new value" fields that never render
anything, and a blank one keeps the stored secret.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from tenants import actions
from tenants.crypto import mask_secret
from tenants.forms import SecretInput, WriteOnlyTextarea
from tenants.models import AuditEvent, MiniProgramApp, OpsAccessLog, PayAccount, StaffMembership, Tenant
from tenants.pay_material import validate_pay_material
from tenants.pay_notify import notify_url_v2, notify_url_v3

NEW_SECRET_HELP = _("只写：填写则替换已保存的值，留空则保留。")


def _secret_status(value: str) -> str:
    return mask_secret(value) if value else _("未设置")


class TenantAdminForm(forms.ModelForm):
    class Meta:
        model = Tenant
        fields = ["slug", "name"]

    def clean_slug(self):
        slug = (self.cleaned_data.get("slug") or "").strip().lower()
        if self.instance.pk is None:
            if not actions.SLUG_RE.match(slug):
                raise ValidationError(_("标识只能包含小写字母、数字和连字符（1–50 个字符）。"))
            if slug in actions.RESERVED_SLUGS:
                raise ValidationError(_("标识 %(slug)s 是保留字，请换一个。") % {"slug": slug})
        return slug


class MiniProgramAdminForm(forms.ModelForm):
    new_app_secret = forms.CharField(label=_("小程序 AppSecret"), required=False, widget=SecretInput(),
                                     help_text=NEW_SECRET_HELP)

    class Meta:
        model = MiniProgramApp
        fields = ["appid"]

    def clean_appid(self):
        appid = (self.cleaned_data.get("appid") or "").strip()
        if not actions.APPID_RE.match(appid):
            raise ValidationError(_("AppID 格式不正确：应以 wx 开头，共 16–32 个字母或数字。"))
        return appid


PAY_SECRET_FORM_FIELDS = {"new_apiv3_key": "apiv3_key", "new_merchant_private_key": "merchant_private_key",
                          "new_v2_key": "v2_key"}


class PayAccountAdminForm(forms.ModelForm):
    new_apiv3_key = forms.CharField(label=_("APIv3 密钥"), required=False, widget=SecretInput(),
                                    help_text=NEW_SECRET_HELP)
    new_merchant_private_key = forms.CharField(label=_("商户 API 私钥"), required=False,
                                               widget=WriteOnlyTextarea(), help_text=NEW_SECRET_HELP)
    new_v2_key = forms.CharField(label=_("APIv2 密钥"), required=False, widget=SecretInput(),
                                 help_text=NEW_SECRET_HELP)

    class Meta:
        model = PayAccount
        fields = ["mchid", "merchant_cert_serial", "public_key_pem", "public_key_id"]

    def clean_mchid(self):
        mchid = (self.cleaned_data.get("mchid") or "").strip()
        if not actions.MCHID_RE.match(mchid):
            raise ValidationError(_("商户号应为 8–12 位数字。"))
        return mchid

    def clean(self):
        data = super().clean()
        stored = self.instance
        merged = {model_field: (data.get(form_field) or "").strip() or getattr(stored, model_field) or ""
                  for form_field, model_field in PAY_SECRET_FORM_FIELDS.items()}
        try:
            validate_pay_material(
                merchant_cert_serial=(data.get("merchant_cert_serial") or "").strip(),
                public_key_pem=(data.get("public_key_pem") or "").strip(),
                public_key_id=(data.get("public_key_id") or "").strip(),
                platform_certs=stored.platform_certs or {}, **merged,
            )
        except ValidationError as exc:
            self.add_error(None, exc)
        return data

    def action_kwargs(self) -> dict:
        data = self.cleaned_data
        kwargs = {model_field: (data.get(form_field) or "").strip()
                  for form_field, model_field in PAY_SECRET_FORM_FIELDS.items()}
        for name in ("mchid", "merchant_cert_serial", "public_key_pem", "public_key_id"):
            kwargs[name] = (data.get(name) or "").strip()
        return kwargs


class MiniProgramInline(admin.StackedInline):
    model = MiniProgramApp
    form = MiniProgramAdminForm
    fields = ["appid", "secret_status", "new_app_secret"]
    readonly_fields = ["secret_status"]
    extra = 0
    max_num = 1
    can_delete = False

    @admin.display(description=_("当前 AppSecret"))
    def secret_status(self, obj):
        return _secret_status(obj.app_secret) if obj and obj.pk else "—"


class PayAccountInline(admin.StackedInline):
    model = PayAccount
    form = PayAccountAdminForm
    fields = ["mchid", "secrets_status", "new_apiv3_key", "new_merchant_private_key", "merchant_cert_serial",
              "public_key_pem", "public_key_id", "platform_cert_serials", "new_v2_key", "notify_urls"]
    readonly_fields = ["secrets_status", "platform_cert_serials", "notify_urls"]
    extra = 0
    max_num = 1
    can_delete = False

    @admin.display(description=_("当前密钥"))
    def secrets_status(self, obj):
        if not obj or not obj.pk:
            return "—"
        return "APIv3: {} · {}: {} · APIv2: {}".format(
            _secret_status(obj.apiv3_key), _("私钥"),
            _("已设置") if obj.merchant_private_key else _("未设置"), _secret_status(obj.v2_key))

    @admin.display(description=_("平台证书"))
    def platform_cert_serials(self, obj):
        return ", ".join(sorted(obj.platform_certs or {})) if obj and obj.pk else "—"

    @admin.display(description=_("支付通知地址"))
    def notify_urls(self, obj):
        return f"{notify_url_v3(obj)}  {notify_url_v2(obj)}" if obj and obj.pk else "—"


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    form = TenantAdminForm
    list_display = ["slug", "name", "status", "created_at"]
    list_filter = ["status"]
    search_fields = ["slug", "name"]
    ordering = ["slug"]
    inlines = [MiniProgramInline, PayAccountInline]
    actions = ["suspend", "reactivate"]

    def get_readonly_fields(self, request, obj=None):
        return ["slug", "status", "created_at"] if obj else ["status", "created_at"]

    def get_fields(self, request, obj=None):
        return ["slug", "name", "status", "created_at"]

    def has_delete_permission(self, request, obj=None) -> bool:
        # Deleting a tenant cascades through every row it owns; suspend instead.
        return False

    def save_model(self, request, obj, form, change):
        if change:
            if "name" in form.changed_data:
                actions.update_tenant_profile(obj, name=obj.name, actor=request.user)
            return
        created = actions.create_tenant(slug=obj.slug, name=obj.name, actor=request.user)
        obj.pk, obj.status, obj.created_at = created.pk, created.status, created.created_at
        obj._state.adding = False
        obj._state.db = created._state.db

    def save_formset(self, request, form, formset, change):
        tenant = form.instance
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for inline_form in formset.forms:
            if not inline_form.has_changed():
                continue
            existed = inline_form.instance.pk is not None
            if formset.model is MiniProgramApp:
                saved = actions.set_mini_program(
                    tenant, appid=inline_form.cleaned_data["appid"],
                    app_secret=inline_form.cleaned_data.get("new_app_secret") or None, actor=request.user)
            else:
                saved = actions.set_pay_account(tenant, actor=request.user, **inline_form.action_kwargs())
            if existed:
                formset.changed_objects.append((saved, inline_form.changed_data))
            else:
                formset.new_objects.append(saved)

    @admin.action(description=_("停用所选商户"))
    def suspend(self, request, queryset):
        self._set_status(request, queryset, Tenant.Status.SUSPENDED)

    @admin.action(description=_("恢复所选商户"))
    def reactivate(self, request, queryset):
        self._set_status(request, queryset, Tenant.Status.ACTIVE)

    def _set_status(self, request, queryset, status):
        changed = 0
        for tenant in queryset:
            if tenant.status != status:
                actions.set_tenant_status(tenant, status, actor=request.user)
                changed += 1
        self.message_user(request, ngettext("%(n)d 个商户已更新。", "%(n)d 个商户已更新。", changed) % {"n": changed},
                          messages.SUCCESS)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records, not settings: viewable, never edited from /ops/."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(StaffMembership)
class StaffMembershipAdmin(ReadOnlyAdmin):
    list_display = ["user", "tenant", "role", "is_active", "created_at"]
    list_filter = ["role", "is_active"]
    search_fields = ["user__username", "tenant__slug", "tenant__name"]
    list_select_related = ["user", "tenant"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "tenant", "actor", "action", "target"]
    list_filter = ["action"]
    search_fields = ["action", "target", "tenant__slug"]
    list_select_related = ["tenant", "actor"]
    ordering = ["-created_at", "-id"]


@admin.register(OpsAccessLog)
class OpsAccessLogAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "user", "method", "path"]
    list_filter = ["method"]
    search_fields = ["path", "user__username"]
    list_select_related = ["user"]
    ordering = ["-created_at", "-id"]
