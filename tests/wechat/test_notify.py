from __future__ import annotations

import json
import logging
import time
from dataclasses import replace

import pytest
from django.http import HttpHeaders

from wechat.errors import NotifyDecryptError, NotifySignatureError
from wechat.notify import build_signed_notification, verify_notification
from wechat.payv3 import aesgcm_encrypt, sign_response
from wechat.testing import make_pay_credentials, self_signed_cert_pem

RESOURCE = {
    "mchid": "1900000109",
    "appid": "wxd678efh567hg6787",
    "out_trade_no": "JZ20240608000001",
    "transaction_id": "4200000000000000000000000001",
    "trade_type": "JSAPI",
    "trade_state": "SUCCESS",
    "trade_state_desc": "支付成功",
    "bank_type": "OTHERS",
    "attach": "",
    "success_time": "2024-06-08T10:34:56+08:00",
    "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
    "amount": {"total": 1200, "payer_total": 1200, "currency": "CNY", "payer_currency": "CNY"},
}


def _notify(keys, **kwargs):
    params = {
        "platform_private_key_pem": keys.platform_private_pem,
        "serial": keys.platform_serial,
        "apiv3_key": keys.creds.apiv3_key,
        "event_type": "TRANSACTION.SUCCESS",
        "resource": RESOURCE,
        "original_type": "transaction",
    }
    params.update(kwargs)
    return build_signed_notification(**params)


def _resign(keys, headers, body):
    headers = dict(headers)
    headers["Wechatpay-Signature"] = sign_response(
        keys.platform_private_pem, headers["Wechatpay-Timestamp"], headers["Wechatpay-Nonce"], body
    )
    return headers


def test_good_notification_in_public_key_mode(pay_keys):
    headers, body = _notify(pay_keys, notify_id="EV-1")
    result = verify_notification(headers, body, pay_keys.creds)
    assert result.id == "EV-1"
    assert result.event_type == "TRANSACTION.SUCCESS"
    assert result.resource_type == "encrypt-resource"
    assert result.summary == "支付成功"
    assert result.original_type == "transaction"
    assert result.resource == RESOURCE
    assert result.raw_body == body
    assert result.serial == pay_keys.creds.public_key_id


def test_body_is_the_documented_compact_shape(pay_keys):
    headers, body = _notify(pay_keys)
    text = body.decode()
    assert text.startswith('{"id":"')
    assert '"resource_type":"encrypt-resource","event_type":"TRANSACTION.SUCCESS","summary":"支付成功"' in text
    envelope = json.loads(body)
    assert list(envelope) == ["id", "create_time", "resource_type", "event_type", "summary", "resource"]
    assert list(envelope["resource"]) == ["original_type", "algorithm", "ciphertext", "associated_data", "nonce"]
    assert envelope["resource"]["associated_data"] == "transaction"
    assert len(envelope["resource"]["nonce"]) == 12
    assert envelope["create_time"].endswith("+08:00")
    assert headers["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048"
    assert len(headers["Wechatpay-Timestamp"]) == 10


def test_accepts_django_request_headers(pay_keys):
    headers, body = _notify(pay_keys)
    meta = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items() if k != "Content-Type"}
    assert verify_notification(HttpHeaders(meta), body, pay_keys.creds).resource == RESOURCE
    assert verify_notification(meta, body, pay_keys.creds).resource == RESOURCE


def test_cert_mode_with_case_insensitive_serial(cert_pay_keys):
    headers, body = _notify(cert_pay_keys, serial=cert_pay_keys.platform_serial.lower())
    assert verify_notification(headers, body, cert_pay_keys.creds).resource["out_trade_no"] == "JZ20240608000001"


def test_two_certificates_and_a_public_key_at_once(merchant_key_pem, platform_key_pem, other_key_pem):
    keys = make_pay_credentials(
        merchant_private_pem=merchant_key_pem, platform_private_pem=platform_key_pem, mode="both"
    )
    old_serial = "1111111111111111111111111111111111111111"
    creds = replace(
        keys.creds,
        platform_certs={**keys.creds.platform_certs, old_serial: self_signed_cert_pem(other_key_pem, old_serial)},
    )
    by_new_cert = _notify(keys, serial="5157F09EFDC096DE15EBE81A47057A7232F1B8E1")
    by_public_key = _notify(keys, serial=keys.creds.public_key_id)
    by_old_cert = _notify(keys, serial=old_serial, platform_private_key_pem=other_key_pem)
    for headers, body in (by_new_cert, by_public_key, by_old_cert):
        assert verify_notification(headers, body, creds).resource == RESOURCE
    # The old certificate's serial with the new key's signature must not pass.
    headers, body = by_new_cert
    with pytest.raises(NotifySignatureError) as err:
        verify_notification({**headers, "Wechatpay-Serial": old_serial}, body, creds)
    assert err.value.reason_code == "bad_signature"


def test_tampered_body_is_rejected(pay_keys):
    headers, body = _notify(pay_keys)
    tampered = body.replace(b'"summary":"\xe6\x94\xaf', b'"summary":"X\xe6\x94\xaf')
    assert tampered != body
    with pytest.raises(NotifySignatureError) as err:
        verify_notification(headers, tampered, pay_keys.creds)
    assert (err.value.reason_code, err.value.http_status) == ("bad_signature", 401)


def test_reserialised_body_is_rejected(pay_keys):
    headers, body = _notify(pay_keys)
    with pytest.raises(NotifySignatureError):
        verify_notification(headers, json.dumps(json.loads(body)).encode(), pay_keys.creds)


def test_wrong_key_is_rejected(pay_keys, other_key_pem):
    headers, body = _notify(pay_keys, platform_private_key_pem=other_key_pem)
    with pytest.raises(NotifySignatureError) as err:
        verify_notification(headers, body, pay_keys.creds)
    assert err.value.reason_code == "bad_signature"


@pytest.mark.parametrize("serial", ["PUB_KEY_ID_0000000000000000000000000000OTHER", "ABCDEF0123"])
def test_unknown_serial_is_rejected(pay_keys, serial):
    headers, body = _notify(pay_keys, serial=serial)
    with pytest.raises(NotifySignatureError) as err:
        verify_notification(headers, body, pay_keys.creds)
    assert (err.value.reason_code, err.value.http_status) == ("unknown_serial", 401)


def test_public_key_serial_sent_to_a_cert_only_tenant_is_rejected(cert_pay_keys):
    headers, body = _notify(cert_pay_keys, serial="PUB_KEY_ID_0114232134912410000000000000TEST")
    with pytest.raises(NotifySignatureError) as err:
        verify_notification(headers, body, cert_pay_keys.creds)
    assert err.value.reason_code == "unknown_serial"


@pytest.mark.parametrize("offset", [-301, 301])
def test_stale_timestamp_is_rejected(pay_keys, offset):
    headers, body = _notify(pay_keys, timestamp=int(time.time()) + offset)
    with pytest.raises(NotifySignatureError) as err:
        verify_notification(headers, body, pay_keys.creds)
    assert err.value.reason_code == "stale_timestamp"


def test_timestamp_at_the_edge_is_fresh(pay_keys):
    headers, body = _notify(pay_keys, timestamp=1_700_000_000)
    assert verify_notification(headers, body, pay_keys.creds, now=1_700_000_300).resource == RESOURCE
    with pytest.raises(NotifySignatureError):
        verify_notification(headers, body, pay_keys.creds, now=1_700_000_301)


def test_signature_probe_is_rejected_and_logged_at_info_without_body(pay_keys, caplog):
    headers, body = _notify(pay_keys)
    headers["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/" + headers["Wechatpay-Signature"]
    with caplog.at_level(logging.INFO, logger="wechat.payv3"), pytest.raises(NotifySignatureError) as err:
        verify_notification(headers, body, pay_keys.creds)
    assert (err.value.reason_code, err.value.http_status) == ("signature_probe", 401)
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert "ciphertext" not in caplog.text and body.decode() not in caplog.text


@pytest.mark.parametrize(
    "header", ["Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial"]
)
def test_missing_header_is_rejected(pay_keys, header):
    headers, body = _notify(pay_keys)
    del headers[header]
    with pytest.raises(NotifySignatureError) as err:
        verify_notification(headers, body, pay_keys.creds)
    assert err.value.reason_code == "missing_header"


def test_non_numeric_timestamp_is_rejected(pay_keys):
    headers, body = _notify(pay_keys)
    headers["Wechatpay-Timestamp"] = "1717814096000x"
    with pytest.raises(NotifySignatureError):
        verify_notification(headers, body, pay_keys.creds)


def _signed_envelope(keys, envelope: dict) -> tuple[dict, bytes]:
    headers, _ = _notify(keys)
    body = json.dumps(envelope, separators=(",", ":")).encode()
    return _resign(keys, headers, body), body


def _envelope(keys, **resource_overrides) -> dict:
    resource = {
        "original_type": "transaction",
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": aesgcm_encrypt(keys.creds.apiv3_key, "abcdefghijkl", "transaction", b'{"ok":1}'),
        "associated_data": "transaction",
        "nonce": "abcdefghijkl",
    }
    resource.update(resource_overrides)
    return {"id": "1", "create_time": "", "resource_type": "encrypt-resource", "event_type": "TRANSACTION.SUCCESS",
            "summary": "", "resource": resource}


def test_wrong_apiv3_key_is_a_decrypt_error(pay_keys):
    headers, body = _notify(pay_keys, apiv3_key="z" * 32)
    with pytest.raises(NotifyDecryptError) as err:
        verify_notification(headers, body, pay_keys.creds)
    assert (err.value.reason_code, err.value.http_status) == ("undecryptable", 400)


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"ciphertext": "bm90IGEgcmVhbCBjaXBoZXJ0ZXh0IGF0IGFsbA=="}, "undecryptable"),
        ({"ciphertext": "***"}, "undecryptable"),
        ({"associated_data": "refund"}, "undecryptable"),
        ({"algorithm": "AEAD_AES_128_GCM"}, "bad_algorithm"),
        ({"nonce": None}, "bad_body"),
    ],
)
def test_bad_resource_is_a_decrypt_error(pay_keys, override, reason):
    headers, body = _signed_envelope(pay_keys, _envelope(pay_keys, **override))
    with pytest.raises(NotifyDecryptError) as err:
        verify_notification(headers, body, pay_keys.creds)
    assert err.value.reason_code == reason


def test_plain_resource_type_is_refused(pay_keys):
    envelope = _envelope(pay_keys)
    envelope["resource_type"] = "plain"
    headers, body = _signed_envelope(pay_keys, envelope)
    with pytest.raises(NotifyDecryptError) as err:
        verify_notification(headers, body, pay_keys.creds)
    assert err.value.reason_code == "bad_resource_type"


def test_signed_non_json_body_is_a_decrypt_error(pay_keys):
    headers, _ = _notify(pay_keys)
    body = b"\xff not json"
    with pytest.raises(NotifyDecryptError) as err:
        verify_notification(_resign(pay_keys, headers, body), body, pay_keys.creds)
    assert err.value.reason_code == "not_json"


def test_plaintext_that_is_not_json_is_a_decrypt_error(pay_keys):
    ciphertext = aesgcm_encrypt(pay_keys.creds.apiv3_key, "abcdefghijkl", "transaction", b"[1,2]")
    headers, body = _signed_envelope(pay_keys, _envelope(pay_keys, ciphertext=ciphertext))
    with pytest.raises(NotifyDecryptError) as err:
        verify_notification(headers, body, pay_keys.creds)
    assert err.value.reason_code == "not_json"


def test_refund_notification_round_trip(pay_keys):
    resource = {"mchid": "1900000109", "out_trade_no": "JZ1", "out_refund_no": "RF1", "refund_status": "SUCCESS",
                "amount": {"total": 100, "refund": 100, "payer_total": 100, "payer_refund": 100}}
    headers, body = _notify(pay_keys, event_type="REFUND.SUCCESS", resource=resource, original_type="refund")
    result = verify_notification(headers, body, pay_keys.creds)
    assert (result.event_type, result.summary, result.original_type) == ("REFUND.SUCCESS", "退款成功", "refund")
    assert result.resource == resource


def test_unknown_signature_type_is_rejected(pay_keys):
    headers, body = _notify(pay_keys)
    headers["Wechatpay-Signature-Type"] = "WECHATPAY2-SM2-WITH-SM3"
    with pytest.raises(NotifySignatureError) as err:
        verify_notification(headers, body, pay_keys.creds)
    assert err.value.reason_code == "bad_signature_type"


def test_signature_type_header_is_optional(pay_keys):
    headers, body = _notify(pay_keys)
    del headers["Wechatpay-Signature-Type"]
    assert verify_notification(headers, body, pay_keys.creds).resource == RESOURCE
