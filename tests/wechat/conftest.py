from __future__ import annotations

import pytest

from tenants.credentials import MiniProgramCredentials
from tests.wechat import urls as test_urls
from wechat.testing import (
    PayKeys,
    generate_private_key_pem,
    make_pay_credentials,
    make_sandbox_pay_credentials,
    sandbox_transport,
)


@pytest.fixture(scope="session")
def merchant_key_pem() -> str:
    return generate_private_key_pem()


@pytest.fixture(scope="session")
def platform_key_pem() -> str:
    return generate_private_key_pem()


@pytest.fixture(scope="session")
def other_key_pem() -> str:
    return generate_private_key_pem()


@pytest.fixture
def pay_keys(merchant_key_pem: str, platform_key_pem: str) -> PayKeys:
    return make_pay_credentials(merchant_private_pem=merchant_key_pem, platform_private_pem=platform_key_pem)


@pytest.fixture
def cert_pay_keys(merchant_key_pem: str, platform_key_pem: str) -> PayKeys:
    return make_pay_credentials(
        merchant_private_pem=merchant_key_pem, platform_private_pem=platform_key_pem, mode="cert"
    )


# --- sandbox ------------------------------------------------------------------------------------------

APPID = "wx5a1db0x000000001"
SECRET = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="session")
def sandbox_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("wechat-sandbox")


@pytest.fixture
def sandbox(settings, sandbox_dir):
    """The sandbox mounted at http://testserver/sandbox/wechat/, with clients pointed at it."""
    settings.ROOT_URLCONF = "tests.wechat.urls"
    settings.PUBLIC_BASE_URL = "http://testserver"
    settings.WECHAT_API_BASE = "http://testserver/sandbox/wechat"
    settings.WECHATPAY_API_BASE = "http://testserver/sandbox/wechat/pay"
    settings.WECHAT_SANDBOX_DIR = str(sandbox_dir)
    test_urls.ACCOUNTS.clear()
    test_urls.RECEIVED.clear()
    test_urls.FORCED_STATUS.clear()
    yield
    test_urls.ACCOUNTS.clear()
    test_urls.RECEIVED.clear()


@pytest.fixture
def mp_creds(monkeypatch, sandbox):
    creds = MiniProgramCredentials(tenant_id=1, appid=APPID, secret=SECRET)
    apps = {APPID: creds}
    monkeypatch.setattr("tenants.resolvers.mini_program_credentials", apps.get)
    return creds


@pytest.fixture
def transport(sandbox):
    with sandbox_transport() as routed:
        yield routed


@pytest.fixture
def merchant(monkeypatch, sandbox, merchant_key_pem) -> PayKeys:
    """A merchant in public-key mode with the sandbox's platform key, as the demo tenants are."""
    keys = make_sandbox_pay_credentials(appid=APPID, merchant_private_pem=merchant_key_pem)
    accounts = {keys.creds.mchid: keys.creds}
    monkeypatch.setattr("tenants.resolvers.pay_credentials_by_mchid", accounts.get)
    test_urls.ACCOUNTS[keys.creds.notify_token] = keys.creds
    return keys


@pytest.fixture
def notify_url(merchant) -> str:
    return f"http://testserver/pay/wechat/test/{merchant.creds.notify_token}/"
