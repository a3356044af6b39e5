from django.urls import path

from payments import console_views as views

app_name = "orders"

urlpatterns = [
    path("", views.order_index, name="index"),
    path("<int:pk>/", views.order_detail, name="detail"),
    path("<int:pk>/refund/", views.order_refund, name="refund"),
    path("<int:pk>/sync/", views.order_sync, name="sync"),
    path("<int:pk>/sandbox-pay/", views.sandbox_pay, name="sandbox_pay"),
    path("notifications/<int:pk>/resolve/", views.notification_resolve, name="resolve"),
    path("reconciliation/", views.reconciliation, name="reconciliation"),
    path("reconciliation/check/", views.bill_check_now, name="bill_check"),
]
