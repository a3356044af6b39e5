from __future__ import annotations

import pytest

from wechat.testing import PayKeys, generate_private_key_pem, make_pay_credentials


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
