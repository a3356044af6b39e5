"""A local stand-in for WeChat's servers (mini-program APIs and WeChat Pay v3), for the demo and tests.

Mounted at ``/sandbox/wechat/`` only when ``settings.WECHAT_SANDBOX``; answers with WeChat's
shapes, error codes and signatures. State lives in the Django cache (share it across processes
with Redis); the platform signing key lives in a file so every process signs with the same key.
"""
