"""Mounted at ``sandbox/wechat/`` by config/urls.py when ``settings.WECHAT_SANDBOX`` is on.

``WECHAT_API_BASE`` points here and ``WECHATPAY_API_BASE`` at ``pay/`` below.
"""

from django.urls import path

from . import mp_views, pay_views

app_name = "wechat_sandbox"

urlpatterns = [
    path("sns/jscode2session", mp_views.jscode2session, name="jscode2session"),
    path("cgi-bin/token", mp_views.token, name="token"),
    path("cgi-bin/stable_token", mp_views.stable_token, name="stable_token"),
    path("cgi-bin/message/subscribe/send", mp_views.subscribe_send, name="subscribe_send"),
    path("_inbox", mp_views.inbox, name="inbox"),
    path("pay/v3/pay/transactions/jsapi", pay_views.jsapi, name="pay_jsapi"),
    path(
        "pay/v3/pay/transactions/out-trade-no/<str:out_trade_no>",
        pay_views.query_by_out_trade_no,
        name="pay_query",
    ),
    path(
        "pay/v3/pay/transactions/out-trade-no/<str:out_trade_no>/close",
        pay_views.close,
        name="pay_close",
    ),
    path("pay/v3/pay/transactions/id/<str:transaction_id>", pay_views.query_by_transaction_id, name="pay_query_id"),
    path("pay/v3/refund/domestic/refunds", pay_views.refund, name="pay_refund"),
    path("pay/v3/refund/domestic/refunds/<str:out_refund_no>", pay_views.query_refund, name="pay_refund_query"),
    path("pay/v3/certificates", pay_views.certificates, name="pay_certificates"),
    path("pay/v3/bill/tradebill", pay_views.trade_bill, name="pay_trade_bill"),
    path("pay/v3/billdownload/file", pay_views.bill_download, name="pay_bill_download"),
    path("pay/_simulate/pay", pay_views.simulate_pay, name="simulate_pay"),
    path("pay/_simulate/refund", pay_views.simulate_refund, name="simulate_refund"),
]
