from django.db import models
from django.utils.translation import gettext_lazy as _

from tenants.models import TenantOwnedModel


class Category(TenantOwnedModel):
    name = models.CharField(_("名称"), max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("分类")
        verbose_name_plural = _("分类")
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="uniq_category_tenant_name")]

    def __str__(self) -> str:
        return self.name


class Item(TenantOwnedModel):
    sku = models.CharField(_("SKU"), max_length=64)
    name = models.CharField(_("名称"), max_length=200)
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="items", verbose_name=_("分类"))
    price_fen = models.PositiveBigIntegerField(_("价格（分）"))
    active = models.BooleanField(_("在售"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("商品")
        verbose_name_plural = _("商品")
        constraints = [models.UniqueConstraint(fields=["tenant", "sku"], name="uniq_item_tenant_sku")]
        indexes = [models.Index(fields=["tenant", "category", "active"], name="item_tenant_category")]

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"
