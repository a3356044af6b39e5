"""The one place that speaks to WeChat: mini-program APIs, WeChat Pay v3/v2, and the local sandbox.

Imports only ``tenants`` (for credentials) and Django; never a business app.
"""
