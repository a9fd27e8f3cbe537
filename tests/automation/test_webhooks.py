"""Webhook signatures as the verifier sees them, on a clock the test sets: the Standard Webhooks scheme
(signed by the reference `standardwebhooks` package), its window, malformed headers, the GitHub scheme,
and the replay cache in a real SQLite file."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from hub.db import SqliteDatabase
from tools.automation.webhooks import MAX_ID, TOLERANCE, ReplayCache, SignatureRefused, new_secret, verify

NOW = 1_800_000_000
BODY = b'{"ref": "v1.2.3"}'


def signed(secret: str, body: bytes = BODY, message_id: str = "msg_1", at: int = NOW) -> dict[str, str]:
    signature = Webhook(secret).sign(message_id, dt.datetime.fromtimestamp(at, dt.timezone.utc), body.decode())
    return {"webhook-id": message_id, "webhook-timestamp": str(at), "webhook-signature": signature}


def refusal(secret: str, headers: dict[str, str], body: bytes = BODY, scheme: str = "standard") -> SignatureRefused:
    with pytest.raises(SignatureRefused) as caught:
        verify(scheme, secret, headers, body, now=NOW)  # type: ignore[arg-type]
    message = str(caught.value)
    assert not [part for part in (secret, secret.removeprefix("whsec_")) if len(part) >= 8 and part in message]
    return caught.value


def test_a_reference_signature_passes_and_gives_the_id_and_time() -> None:
    secret = new_secret("standard")
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    assert verify("standard", secret, signed(secret), BODY, now=NOW) == ("msg_1", NOW)


def test_the_window_is_five_minutes_either_way() -> None:
    secret = new_secret("standard")
    for off in (-TOLERANCE, TOLERANCE):
        assert verify("standard", secret, signed(secret, at=NOW + int(off)), BODY, now=NOW) is not None
    old = refusal(secret, signed(secret, at=NOW - 301))
    assert "webhook-timestamp is 301 s in the past" in str(old) and old.status == 401
    ahead = refusal(secret, signed(secret, at=NOW + 301))
    assert "webhook-timestamp is 301 s ahead of the hub's clock" in str(ahead)
    for stamp in ("1.8e9", "nan", "-5", "", "1800000000.5", "99999999999999999999"):
        headers = {**signed(secret), "webhook-timestamp": stamp}
        assert "webhook-timestamp" in str(refusal(secret, headers))


def test_a_signature_must_cover_this_id_time_and_body_with_this_secret() -> None:
    secret = new_secret("standard")
    good = signed(secret)
    assert "no v1 signature matches" in str(refusal(secret, good, body=b'{"ref": "evil"}'))
    assert "no v1 signature matches" in str(refusal(secret, {**good, "webhook-id": "msg_2"}))
    assert "no v1 signature matches" in str(refusal(secret, {**good, "webhook-timestamp": str(NOW + 1)}))
    assert "no v1 signature matches" in str(refusal(secret, signed(new_secret("standard"))))


def test_several_signatures_any_may_match_and_bad_entries_are_skipped() -> None:
    secret, old = new_secret("standard"), new_secret("standard")
    mine = signed(secret)["webhook-signature"]
    theirs = signed(old)["webhook-signature"]
    for header in (f"{theirs} {mine}", f"{mine} {theirs}", f"garbage v1,!!! v1a,xyz v2,{mine[3:]} {mine}"):
        assert verify("standard", secret, {**signed(secret), "webhook-signature": header}, BODY, now=NOW)
    assert "no v1 signature matches" in str(refusal(secret, {**signed(secret), "webhook-signature": theirs}))
    no_v1 = refusal(secret, {**signed(secret), "webhook-signature": "v1a,abc garbage"})
    assert "webhook-signature has no v1 signature" in str(no_v1)


def test_missing_headers_are_named() -> None:
    secret = new_secret("standard")
    assert "webhook-signature header missing" in str(refusal(secret, {"webhook-id": "a", "webhook-timestamp": "1"}))
    assert "webhook-id, webhook-timestamp, webhook-signature headers missing" in str(refusal(secret, {}))
    github = "sha256=" + hmac.new(secret.encode(), BODY, hashlib.sha256).hexdigest()
    wrong_scheme = refusal(secret, {"x-hub-signature-256": github})
    assert "this job takes Standard Webhooks signatures, not X-Hub-Signature-256" in str(wrong_scheme)
    assert f"longer than {MAX_ID}" in str(refusal(secret, signed(secret, message_id="x" * (MAX_ID + 1))))


def test_a_body_that_is_not_utf8_is_checked_not_crashed_on() -> None:
    secret = new_secret("standard")
    key = base64.b64decode(secret[6:])
    body = b"\xff\xfe binary"
    signature = base64.b64encode(hmac.new(key, b"m." + str(NOW).encode() + b"." + body, hashlib.sha256).digest())
    headers = {"webhook-id": "m", "webhook-timestamp": str(NOW), "webhook-signature": "v1," + signature.decode()}
    assert verify("standard", secret, headers, body, now=NOW) == ("m", NOW)
    assert "no v1 signature matches" in str(refusal(secret, headers, body=b"\xff\xfe other"))


def test_the_github_scheme_checks_the_body_only() -> None:
    secret = new_secret("github")
    good = {"x-hub-signature-256": "sha256=" + hmac.new(secret.encode(), BODY, hashlib.sha256).hexdigest()}
    assert verify("github", secret, good, BODY, now=NOW) is None  # nothing to remember: replayable
    assert verify("github", secret, good, BODY, now=NOW + 10**6) is None  # ... at any time
    assert "X-Hub-Signature-256 is wrong" in str(refusal(secret, good, body=b"{}", scheme="github"))
    assert "X-Hub-Signature-256 header missing" in str(refusal(secret, signed(new_secret("standard")),
                                                              scheme="github"))


def test_a_secret_that_is_not_whsec_is_the_hubs_fault() -> None:
    for secret in ("plain-old-secret", "whsec_", "whsec_not base64!"):
        refused = refusal(secret, {"webhook-id": "a", "webhook-timestamp": str(NOW), "webhook-signature": "v1,AA=="})
        assert refused.status == 503 and "whsec_" in str(refused)


def test_an_id_is_taken_once_per_job_until_it_could_no_longer_pass(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "automation.db")
    cache = ReplayCache(db)
    cache.first_delivery("deploy", "msg_1", NOW, now=NOW)
    cache.first_delivery("other", "msg_1", NOW, now=NOW)  # one message may go to several jobs
    with pytest.raises(SignatureRefused, match="webhook-id 'msg_1' was already delivered"):
        cache.first_delivery("deploy", "msg_1", NOW, now=NOW + TOLERANCE)
    db.close()
    cache = ReplayCache(SqliteDatabase(tmp_path / "automation.db"))  # a restart remembers
    with pytest.raises(SignatureRefused):
        cache.first_delivery("deploy", "msg_1", NOW, now=NOW + 1)
    # once its timestamp is outside the window the id is dropped: verify() refuses it by then
    cache.first_delivery("deploy", "msg_2", NOW + 2 * int(TOLERANCE), now=NOW + TOLERANCE + 1)
    assert db is not None and cache._db.rows("SELECT job, id FROM webhook_ids ORDER BY job, id") == [
        ("deploy", "msg_2")]
    cache.forget("deploy")
    assert cache._db.rows("SELECT COUNT(*) FROM webhook_ids") == [(0,)]
