from __future__ import annotations

import hashlib
import hmac

import pytest

from wechat import payv2
from wechat.errors import PayV2DataError

KEY = "192006250b4c09247ec02edce69f6a2d"

# The example from WeChat's v2 signing guide.
DOC_FIELDS = {
    "appid": "wxd930ea5d5a258f4f",
    "mch_id": "10000100",
    "device_info": "1000",
    "body": "test",
    "nonce_str": "ibuaiVcKdpRxkhJA",
}


def test_md5_matches_the_documented_example():
    assert payv2.sign_string(DOC_FIELDS, KEY) == (
        "appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA"
        "&key=192006250b4c09247ec02edce69f6a2d"
    )
    assert payv2.sign(DOC_FIELDS, KEY) == "9A0A8659F005D6984697E2CA0A9CF3B7"


def test_hmac_sha256_is_keyed_by_the_api_key_over_the_same_string():
    expected = hmac.new(KEY.encode(), payv2.sign_string(DOC_FIELDS, KEY).encode(), hashlib.sha256).hexdigest().upper()
    assert payv2.sign(DOC_FIELDS, KEY, "HMAC-SHA256") == expected


def test_empty_values_and_sign_are_excluded_and_values_are_raw():
    fields = {"b": "x y&z", "a": "中文", "attach": "", "none": None, "sign": "IGNORED", "n": 0}
    assert payv2.sign_string(fields, "k") == "a=中文&b=x y&z&n=0&key=k"


def test_unknown_wire_fields_are_signed_over():
    fields = {**DOC_FIELDS, "new_field_2030": "v"}
    fields["sign"] = payv2.sign(fields, KEY)
    assert payv2.verify(fields, KEY)
    without_new = {k: v for k, v in fields.items() if k != "new_field_2030"}
    assert not payv2.verify(without_new, KEY)


@pytest.mark.parametrize("sign_type", ["MD5", "HMAC-SHA256"])
def test_verify_with_declared_sign_type(sign_type):
    fields = {**DOC_FIELDS, "sign_type": sign_type}
    fields["sign"] = payv2.sign(fields, KEY, sign_type)
    assert payv2.verify(fields, KEY)
    assert payv2.verify({**fields, "sign": fields["sign"].lower()}, KEY)
    assert not payv2.verify({**fields, "body": "tampered"}, KEY)
    assert not payv2.verify(fields, "wrong-key")


def test_declared_sign_type_is_not_second_guessed():
    fields = {**DOC_FIELDS, "sign_type": "HMAC-SHA256"}
    fields["sign"] = payv2.sign(fields, KEY, "MD5")
    assert not payv2.verify(fields, KEY, preferred_sign_type="MD5")


def test_notify_without_sign_type_on_an_hmac_order():
    hmac_signed = {**DOC_FIELDS, "result_code": "SUCCESS"}
    hmac_signed["sign"] = payv2.sign(hmac_signed, KEY, "HMAC-SHA256")
    assert payv2.verify(hmac_signed, KEY, preferred_sign_type="HMAC-SHA256")
    # Default preference is MD5 only: an HMAC notify then fails, as it did in the SDKs.
    assert not payv2.verify(hmac_signed, KEY)
    md5_signed = {**DOC_FIELDS, "result_code": "SUCCESS"}
    md5_signed["sign"] = payv2.sign(md5_signed, KEY, "MD5")
    assert payv2.verify(md5_signed, KEY, preferred_sign_type="HMAC-SHA256")


def test_missing_sign_or_unknown_sign_type_fails():
    assert not payv2.verify(DOC_FIELDS, KEY)
    fields = {**DOC_FIELDS, "sign_type": "SHA1"}
    fields["sign"] = payv2.sign(DOC_FIELDS, KEY)
    assert not payv2.verify(fields, KEY)
    with pytest.raises(ValueError):
        payv2.sign(DOC_FIELDS, KEY, "SHA1")


def test_xml_round_trip():
    fields = {"return_code": "SUCCESS", "total_fee": 1, "attach": "a<b>&]]>c", "body": "咖啡"}
    text = payv2.to_xml(fields)
    assert text.startswith("<xml><return_code><![CDATA[SUCCESS]]></return_code><total_fee>1</total_fee>")
    assert payv2.parse_xml(text.encode()) == {"return_code": "SUCCESS", "total_fee": "1", "attach": "a<b>&]]>c", "body": "咖啡"}


@pytest.mark.parametrize(
    "doc",
    [
        b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><a>&x;</a></xml>',
        b'<!doctype xml><xml><a>1</a></xml>',
        b'<xml><!ENTITY a "b"><a>1</a></xml>',
        b"<xml><a>1</a>",
        b"",
    ],
)
def test_dangerous_or_broken_xml_is_refused(doc):
    with pytest.raises(PayV2DataError):
        payv2.parse_xml(doc)


def test_reply_xml():
    assert payv2.reply_xml(True) == "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
    assert payv2.parse_xml(payv2.reply_xml(False, "签名失败")) == {"return_code": "FAIL", "return_msg": "签名失败"}


REFUND_INFO = {
    "transaction_id": "4200000000000000000000000001",
    "out_trade_no": "JZ1",
    "refund_id": "50000000000000000000000000001",
    "out_refund_no": "RF1",
    "total_fee": "100",
    "refund_fee": "100",
    "settlement_refund_fee": "100",
    "refund_status": "SUCCESS",
    "success_time": "2024-06-08 10:34:56",
    "refund_recv_accout": "支付用户的零钱",
    "refund_account": "REFUND_SOURCE_RECHARGE_FUNDS",
    "refund_request_source": "API",
}


def test_refund_req_info_round_trip():
    encrypted = payv2.encrypt_refund_req_info(REFUND_INFO, KEY)
    assert payv2.decrypt_refund_req_info(encrypted, KEY) == REFUND_INFO


@pytest.mark.parametrize(
    "garbage",
    ["", "%%%not base64", "c2hvcnQ=", "QUJDREVGR0hJSktMTU5PUA=="],
)
def test_refund_req_info_garbage_is_a_clear_error(garbage):
    with pytest.raises(PayV2DataError):
        payv2.decrypt_refund_req_info(garbage, KEY)


def test_refund_req_info_with_the_wrong_key_never_leaks_unicode_errors():
    encrypted = payv2.encrypt_refund_req_info(REFUND_INFO, KEY)
    with pytest.raises(PayV2DataError):
        payv2.decrypt_refund_req_info(encrypted, "another-key")
