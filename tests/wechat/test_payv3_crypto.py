from __future__ import annotations

import base64
import json

import pytest

from wechat import payv3
from wechat.testing import public_key_pem


def test_sign_message_verifies_over_the_documented_request_message(merchant_key_pem):
    message = 'GET\n/v3/certificates\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n'
    assert payv3.request_message("get", "/v3/certificates", "1554208460", "593BEC0C930BF1AFEB40B4A08C8FB242", "") == message
    signature = payv3.sign_message(merchant_key_pem, message)
    assert payv3.verify_request_signature(public_key_pem(merchant_key_pem), message, signature)
    assert not payv3.verify_request_signature(public_key_pem(merchant_key_pem), message[:-1] + "x", signature)


def test_build_authorization_has_the_five_pairs_and_verifies(merchant_key_pem):
    body = '{"mchid":"1900000109","description":"咖啡"}'
    header = payv3.build_authorization(
        "1900000109", "ABC123", merchant_key_pem, "POST", "/v3/pay/transactions/jsapi", body,
        timestamp=1554208460, nonce="N0NCE",
    )
    assert header.startswith('WECHATPAY2-SHA256-RSA2048 mchid="1900000109",nonce_str="N0NCE",signature="')
    pairs = payv3.parse_authorization(header)
    assert pairs is not None
    assert (pairs["mchid"], pairs["nonce_str"], pairs["timestamp"], pairs["serial_no"]) == (
        "1900000109", "N0NCE", "1554208460", "ABC123",
    )
    message = f"POST\n/v3/pay/transactions/jsapi\n1554208460\nN0NCE\n{body}\n"
    public = public_key_pem(merchant_key_pem)
    assert payv3.verify_request_signature(public, message, pairs["signature"])
    tampered = message.replace("1900000109", "1900000108")
    assert not payv3.verify_request_signature(public, tampered, pairs["signature"])


def test_build_authorization_uses_ten_digit_seconds(merchant_key_pem):
    pairs = payv3.parse_authorization(
        payv3.build_authorization("1", "S", merchant_key_pem, "GET", "/v3/x", "")
    )
    assert pairs is not None
    assert len(pairs["timestamp"]) == 10
    assert len(pairs["nonce_str"]) == 32


@pytest.mark.parametrize(
    "header",
    [
        "",
        'WECHATPAY2-SHA256-RSA2048 mchid="1"',
        'Bearer mchid="1",nonce_str="n",signature="s",timestamp="1",serial_no="x"',
        'WECHATPAY2-SHA256-RSA2048 mchid=1,nonce_str="n",signature="s",timestamp="1",serial_no="x"',
    ],
)
def test_parse_authorization_refuses_malformed_headers(header):
    assert payv3.parse_authorization(header) is None


def test_response_signature_round_trip_and_one_byte_change(platform_key_pem, other_key_pem):
    body = b'{"prepay_id":"wx201410272009395522657a690389285100"}'
    signature = payv3.sign_response(platform_key_pem, "1554208460", "abc", body)
    public = public_key_pem(platform_key_pem)
    assert payv3.verify_wechatpay_signature(public, "1554208460", "abc", body, signature)
    assert not payv3.verify_wechatpay_signature(public, "1554208460", "abc", body[:-1] + b" ", signature)
    assert not payv3.verify_wechatpay_signature(public, "1554208461", "abc", body, signature)
    assert not payv3.verify_wechatpay_signature(public_key_pem(other_key_pem), "1554208460", "abc", body, signature)
    assert not payv3.verify_wechatpay_signature(public, "1554208460", "abc", body, "not base64!")


def test_aesgcm_round_trip_and_failures():
    key = "0123456789abcdef0123456789abcdef"
    ciphertext = payv3.aesgcm_encrypt(key, "abcdefghijkl", "transaction", '{"a":"支付"}'.encode())
    assert json.loads(payv3.aesgcm_decrypt(key, "abcdefghijkl", "transaction", ciphertext)) == {"a": "支付"}
    with pytest.raises(ValueError):
        payv3.aesgcm_decrypt("f" * 32, "abcdefghijkl", "transaction", ciphertext)
    with pytest.raises(ValueError):
        payv3.aesgcm_decrypt(key, "abcdefghijkl", "refund", ciphertext)
    raw = bytearray(base64.b64decode(ciphertext))
    raw[0] ^= 1
    with pytest.raises(ValueError):
        payv3.aesgcm_decrypt(key, "abcdefghijkl", "transaction", base64.b64encode(bytes(raw)).decode())
    with pytest.raises(ValueError):
        payv3.aesgcm_decrypt(key, "abcdefghijkl", "transaction", "%%%")
    with pytest.raises(ValueError):
        payv3.aesgcm_decrypt("short", "abcdefghijkl", "transaction", ciphertext)


def test_empty_associated_data_is_allowed():
    key = "k" * 32
    ciphertext = payv3.aesgcm_encrypt(key, "n" * 12, "", b"{}")
    assert payv3.aesgcm_decrypt(key, "n" * 12, "", ciphertext) == b"{}"


def test_jsapi_pay_params_sign_the_four_lines(merchant_key_pem):
    params = payv3.jsapi_pay_params("wxd678efh567hg6787", "wx2014", merchant_key_pem, timestamp=1414561699, nonce="5K8264ILTKCH16CQ2502SI8ZNMTM67VS")
    assert {k: v for k, v in params.items() if k != "paySign"} == {
        "appId": "wxd678efh567hg6787",
        "timeStamp": "1414561699",
        "nonceStr": "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
        "package": "prepay_id=wx2014",
        "signType": "RSA",
    }
    message = "wxd678efh567hg6787\n1414561699\n5K8264ILTKCH16CQ2502SI8ZNMTM67VS\nprepay_id=wx2014\n"
    assert payv3.verify_request_signature(public_key_pem(merchant_key_pem), message, params["paySign"])
    other_appid = message.replace("wxd678efh567hg6787", "wx0000000000000000")
    assert not payv3.verify_request_signature(public_key_pem(merchant_key_pem), other_appid, params["paySign"])


def test_normalize_headers_accepts_meta_and_any_case():
    assert payv3.normalize_headers({"HTTP_WECHATPAY_SERIAL": "X", "Wechatpay-Nonce": "n", "wsgi.input": object()}) == {
        "wechatpay-serial": "X",
        "wechatpay-nonce": "n",
    }
