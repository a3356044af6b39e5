"""Console forms for tenant settings. Secrets are write-only: no widget ever renders a stored or
submitted secret, and a blank secret field means "keep what is stored"."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from tenants.models import StaffMembership
from tenants.pay_material import certificate_serial, load_certificate

MAX_KEY_FILE_BYTES = 64 * 1024
KEEP_HINT = _("留空则保留已保存的值。")


class SecretInput(forms.PasswordInput):
    def __init__(self, attrs=None):
        super().__init__(attrs={"autocomplete": "new-password", "spellcheck": "false", **(attrs or {})},
                         render_value=False)


class WriteOnlyTextarea(forms.Textarea):
    """A textarea for PEM material that comes back empty, even when the form is redisplayed."""

    def __init__(self, attrs=None):
        super().__init__(attrs={"rows": 4, "spellcheck": "false", "autocomplete": "off", **(attrs or {})})

    def format_value(self, value):
        return None


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data, initial=None):
        items = data if isinstance(data, list | tuple) else ([data] if data else [])
        return [super(MultipleFileField, self).clean(item, initial) for item in items]


def read_text_file(upload, label) -> str:
    """The text of a small uploaded key or certificate file, or a ValidationError in words."""
    if upload.size > MAX_KEY_FILE_BYTES:
        raise ValidationError(_("%(label)s 文件过大（最多 64 KB）。") % {"label": label}, code="file_too_large")
    try:
        return upload.read().decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValidationError(_("%(label)s 文件不是 PEM 文本。") % {"label": label}, code="not_text") from None


# Which form field an action's ValidationError code belongs to; anything else is a form-wide error.
ERROR_FIELDS = {
    "name_required": "name",
    "bad_appid": "appid",
    "appid_taken": "appid",
    "bad_mchid": "mchid",
    "bad_apiv3_key": "apiv3_key",
    "bad_v2_key": "v2_key",
    "bad_private_key": "merchant_private_key",
    "bad_serial": "merchant_cert_serial",
    "bad_public_key": "public_key_pem",
    "public_key_missing": "public_key_pem",
    "bad_public_key_id": "public_key_id",
    "bad_certificate": "platform_cert_files",
    "serial_mismatch": "platform_cert_files",
    "username_required": "username",
    "already_member": "username",
    "bad_role": "role",
    "password_required": "password",
}


def add_action_errors(form: forms.Form, exc: ValidationError) -> None:
    """Show an action's ValidationError on the form, each message beside the field it is about."""
    for error in exc.error_list:
        field = ERROR_FIELDS.get(error.code or "")
        if field is None and (error.code or "").startswith("password_"):
            field = "password"  # Django's password validators
        form.add_error(field if field in form.fields else None, error)


class TenantProfileForm(forms.Form):
    name = forms.CharField(label=_("商户名称"), max_length=100)


class MiniProgramForm(forms.Form):
    appid = forms.CharField(label=_("小程序 AppID"), max_length=32,
                            widget=forms.TextInput(attrs={"placeholder": "wx…", "spellcheck": "false"}))
    app_secret = forms.CharField(label=_("小程序 AppSecret"), required=False, max_length=128,
                                 widget=SecretInput(), help_text=KEEP_HINT)


class PayAccountForm(forms.Form):
    mchid = forms.CharField(label=_("商户号"), max_length=32)
    apiv3_key = forms.CharField(label=_("APIv3 密钥"), required=False, max_length=64, widget=SecretInput(),
                                help_text=KEEP_HINT)
    merchant_private_key = forms.CharField(
        label=_("商户 API 私钥"), required=False, max_length=MAX_KEY_FILE_BYTES,
        widget=WriteOnlyTextarea(attrs={"placeholder": "-----BEGIN PRIVATE KEY-----"}),
        help_text=_("粘贴 apiclient_key.pem 的内容，或在下方上传该文件。留空则保留已保存的私钥。"),
    )
    merchant_private_key_file = forms.FileField(label=_("上传私钥文件"), required=False)
    merchant_cert_serial = forms.CharField(label=_("商户证书序列号"), required=False, max_length=64,
                                           widget=forms.TextInput(attrs={"spellcheck": "false"}))
    public_key_pem = forms.CharField(
        label=_("微信支付公钥"), required=False, max_length=MAX_KEY_FILE_BYTES,
        widget=WriteOnlyTextarea(attrs={"placeholder": "-----BEGIN PUBLIC KEY-----"}),
        help_text=_("粘贴 pub_key.pem 的内容，或在下方上传该文件。留空则保留已保存的公钥。"),
    )
    public_key_file = forms.FileField(label=_("上传公钥文件"), required=False)
    public_key_id = forms.CharField(label=_("微信支付公钥 ID"), required=False, max_length=64,
                                    widget=forms.TextInput(attrs={"placeholder": "PUB_KEY_ID_…",
                                                                  "spellcheck": "false"}))
    platform_cert_files = MultipleFileField(
        label=_("上传平台证书"), required=False,
        help_text=_("可多选；序列号从证书中读取。同一序列号的证书会被替换。"),
    )
    v2_key = forms.CharField(label=_("APIv2 密钥"), required=False, max_length=64, widget=SecretInput(),
                             help_text=KEEP_HINT)

    def _pem_from(self, text_field: str, file_field: str, label) -> str:
        upload = self.cleaned_data.get(file_field)
        text = (self.cleaned_data.get(text_field) or "").strip()
        if upload:
            try:
                return read_text_file(upload, label)
            except ValidationError as exc:
                self.add_error(file_field, exc)
        return text

    def clean(self):
        data = super().clean()
        data["merchant_private_key"] = self._pem_from("merchant_private_key", "merchant_private_key_file",
                                                      _("私钥"))
        data["public_key_pem"] = self._pem_from("public_key_pem", "public_key_file", _("公钥"))
        certs: dict[str, str] = {}
        for upload in data.get("platform_cert_files") or []:
            try:
                pem = read_text_file(upload, upload.name)
                certs[certificate_serial(load_certificate(pem))] = pem
            except ValidationError as exc:
                self.add_error("platform_cert_files", ValidationError(
                    "%(file)s: %(error)s", params={"file": upload.name, "error": " ".join(exc.messages)},
                    code=exc.error_list[0].code,
                ))
        data["platform_certs"] = certs
        return data

    def action_kwargs(self, stored_certs: dict[str, str]) -> dict:
        """What ``actions.set_pay_account`` takes; blank secrets stay blank so the stored ones are kept."""
        data = self.cleaned_data
        kwargs = {name: (data.get(name) or "").strip() for name in (
            "mchid", "apiv3_key", "merchant_private_key", "merchant_cert_serial", "public_key_pem",
            "public_key_id", "v2_key")}
        if data.get("platform_certs"):
            kwargs["platform_certs"] = {**(stored_certs or {}), **data["platform_certs"]}
        return kwargs


class RemovePlatformCertForm(forms.Form):
    serial = forms.CharField(max_length=64)


class StaffAddForm(forms.Form):
    username = forms.CharField(label=_("用户名"), max_length=150,
                               widget=forms.TextInput(attrs={"autocomplete": "off"}))
    role = forms.ChoiceField(label=_("角色"), choices=StaffMembership.Role.choices,
                             initial=StaffMembership.Role.OPERATOR)
    password = forms.CharField(label=_("初始密码"), required=False, widget=SecretInput(),
                               help_text=_("新用户必填，至少 8 位；已有账号的用户沿用原密码。"))
    email = forms.EmailField(label=_("邮箱"), required=False)


class StaffUpdateForm(forms.Form):
    """One row of the staff table: change the role, or deactivate / reactivate the membership."""

    OPS = (("role", "role"), ("deactivate", "deactivate"), ("activate", "activate"))

    op = forms.ChoiceField(choices=OPS)
    role = forms.ChoiceField(label=_("角色"), choices=StaffMembership.Role.choices, required=False)

    def clean(self):
        data = super().clean()
        if data.get("op") == "role" and not data.get("role"):
            self.add_error("role", _("请选择角色。"))
        return data
