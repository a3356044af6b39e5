from django.urls import path

from campaigns import console_views as views

app_name = "coupons"

urlpatterns = [
    path("", views.index, name="index"),
    path("new/", views.create, name="create"),
    path("<int:template_id>/", views.detail, name="detail"),
    path("<int:template_id>/edit/", views.edit, name="edit"),
    path("<int:template_id>/state/", views.change_state, name="state"),
    path("<int:template_id>/grant/", views.grant, name="grant"),
    path("jobs/<int:job_id>/", views.job, name="job"),
    path("issued/<int:coupon_id>/revoke/", views.revoke, name="revoke"),
    path("loyalty/", views.loyalty, name="loyalty"),
    path("members/<int:member_id>/points/", views.member_ledger, name="ledger"),
]
