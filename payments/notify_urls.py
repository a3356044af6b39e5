"""/pay/wechat/: WeChat Pay notify callbacks (CONTRACT.md, "WeChat Pay notify")."""

urlpatterns: list = []
