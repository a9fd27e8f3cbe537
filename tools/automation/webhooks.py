"""Webhook signatures: whether a request to `POST /hooks/NAME` comes from whoever holds the job's secret,
and that one delivery fires the job once.

Two schemes, chosen per job (`trigger.scheme`):

- `standard` (the default), the Standard Webhooks scheme: `webhook-id` (unique per message),
  `webhook-timestamp` (Unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256 of
  "ID.TIMESTAMP.BODY">`, keyed with the base64 part of a `whsec_` secret; several signatures
  separated by spaces (while a sender rotates its secret), any one of which may match. The
  timestamp must be within `TOLERANCE` of the hub's clock either way, and an id that was accepted
  once is refused while its timestamp could still pass (`ReplayCache`), so a captured request is
  worth nothing to whoever captured it.
- `github`: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>` keyed with the secret as
  it is. Nothing in it changes between deliveries, so a captured request can be sent again and runs
  the job again: only for senders that cannot do better, on the job's explicit choice.

The verification is written here rather than taken from the `standardwebhooks` package: its
`Webhook.verify` raises `ValueError` (not its own error) on a signature entry without a comma or
with bad base64, and `UnicodeDecodeError` on a body that is not UTF-8; its messages do not say which
header is wrong; it reads the wall clock itself; and it keeps no ids, so replays within the window
would still pass. The tests sign with that package, so both read the spec the same way.
This module must not log or return a secret or an expected signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping
from typing import Literal

from hub.db import Database

Scheme = Literal["standard", "github"]
TOLERANCE = 300.0
"""Seconds a `webhook-timestamp` may be off the hub's clock, either way."""
MAX_ID = 200
"""Longest `webhook-id` taken (the ids are kept for the window)."""
MAX_LIVE_IDS = 100_000
"""Ids one job keeps for the window; past that, deliveries wait (429) rather than be let through unchecked."""
GITHUB_HEADER = "X-Hub-Signature-256"
SECRET_PREFIX = "whsec_"
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")


class SignatureRefused(Exception):
    """A delivery that does not prove it comes from the secret's holder, or one already delivered.

    `str()` is for the sender (which header, what was wrong); `reason` is the short form for the log.
    """

    def __init__(self, message: str, reason: str, status: int = 401) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


def new_secret(scheme: Scheme) -> str:
    """A fresh secret in the scheme's form: `whsec_` + base64 of 32 random bytes, or a URL-safe token."""
    if scheme == "standard":
        return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()
    return secrets.token_urlsafe(32)


def how_to_sign(scheme: Scheme) -> dict[str, str]:
    """The headers a sender must send, for the note shown with a new secret."""
    if scheme == "standard":
        return {
            "webhook-id": "an id unique to the message (a retry of the same message keeps it)",
            "webhook-timestamp": f"Unix time in whole seconds, within {TOLERANCE:g} s of the hub's clock",
            "webhook-signature": "v1,<base64 HMAC-SHA256 of 'ID.TIMESTAMP.BODY', keyed with the base64-decoded "
                                 "part of the secret after whsec_> (Standard Webhooks)",
        }
    return {GITHUB_HEADER: "sha256=<hex HMAC-SHA256 of the body, keyed with the secret>"}


def verify(scheme: Scheme, secret: str, headers: Mapping[str, str], body: bytes,
           now: float | None = None) -> tuple[str, int] | None:
    """Check a delivery's signature; returns its `webhook-id` and timestamp for `ReplayCache.first_delivery`
    (None for the github scheme, which has neither).

    `headers` is looked up by lower-case names (Starlette's `Headers` is case-insensitive); values are as
    Starlette gives them (latin-1), so `.encode("latin-1")` gives back the bytes the sender put there.
    """
    if scheme == "github":
        _verify_github(secret, headers, body)
        return None
    return _verify_standard(secret, headers, body, time.time() if now is None else now)


def _verify_github(secret: str, headers: Mapping[str, str], body: bytes) -> None:
    given = headers.get(GITHUB_HEADER.lower(), "")
    if not given:
        raise SignatureRefused(f"{GITHUB_HEADER} header missing (sha256=<hex HMAC-SHA256 of the body with the job's "
                               "webhook secret>)", "no signature")
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given.encode("latin-1"), expected.encode()):
        raise SignatureRefused(f"{GITHUB_HEADER} is wrong (sha256=<hex HMAC-SHA256 of the body with the job's "
                               "webhook secret>)", "bad signature")


def _verify_standard(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> tuple[str, int]:
    missing = [name for name in ("webhook-id", "webhook-timestamp", "webhook-signature") if not headers.get(name)]
    if missing:
        hint = (f"; this job takes Standard Webhooks signatures, not {GITHUB_HEADER}"
                if headers.get(GITHUB_HEADER.lower()) else "")
        raise SignatureRefused(f"{', '.join(missing)} header{'s' if len(missing) > 1 else ''} missing{hint} "
                               "(webhook-id, webhook-timestamp, webhook-signature: v1,<base64 HMAC-SHA256 of "
                               "'ID.TIMESTAMP.BODY'>)", "no signature")
    message_id, stamp, signatures = headers["webhook-id"], headers["webhook-timestamp"], headers["webhook-signature"]
    if len(message_id) > MAX_ID:
        raise SignatureRefused(f"webhook-id is longer than {MAX_ID} characters", "bad id")
    if not _TIMESTAMP.match(stamp):
        raise SignatureRefused("webhook-timestamp is not a Unix time in whole seconds", "bad timestamp")
    timestamp = int(stamp)
    off = now - timestamp
    if abs(off) > TOLERANCE:
        side = "in the past" if off > 0 else "ahead of the hub's clock"
        raise SignatureRefused(f"webhook-timestamp is {abs(off):.0f} s {side}; the hub accepts {TOLERANCE:g} s "
                               "either way (a replayed request, or the sender's clock is off)", "timestamp outside "
                               "the window")
    key = _key(secret)
    signed = message_id.encode("latin-1") + b"." + stamp.encode() + b"." + body
    expected = hmac.new(key, signed, hashlib.sha256).digest()
    versions = 0
    matched = False
    for entry in signatures.split():
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue  # other versions (e.g. v1a, asymmetric) are not ours to check
        versions += 1
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        matched |= hmac.compare_digest(given, expected)  # no early exit: every entry costs the same
    if not versions:
        raise SignatureRefused("webhook-signature has no v1 signature (v1,<base64 HMAC-SHA256 of "
                               "'ID.TIMESTAMP.BODY'>, several separated by spaces)", "no signature")
    if not matched:
        raise SignatureRefused("webhook-signature: no v1 signature matches (HMAC-SHA256 of 'ID.TIMESTAMP.BODY' "
                               "with the job's webhook secret)", "bad signature")
    return message_id, timestamp


def _key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise SignatureRefused("the job's webhook secret is not a Standard Webhooks secret (whsec_...); an admin "
                               "sets a new one", "secret not whsec_", status=503)
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        raise SignatureRefused("the job's webhook secret is not base64 after whsec_; an admin sets a new one",
                               "secret not base64", status=503)
    return key


class ReplayCache:
    """The `webhook-id`s each job accepted, kept in the provider's database (every replica's) until their timestamp
    is outside the window (after that the timestamp check refuses them), so neither a restart nor another replica
    opens the window again."""

    SCHEMA = ("CREATE TABLE IF NOT EXISTS webhook_ids (job TEXT NOT NULL, id TEXT NOT NULL, expires REAL NOT NULL, "
              "PRIMARY KEY (job, id)); CREATE INDEX IF NOT EXISTS webhook_ids_by_expiry ON webhook_ids (expires);")

    def __init__(self, db: Database) -> None:
        self._db = db
        db.script(self.SCHEMA)

    def first_delivery(self, job: str, message_id: str, timestamp: int, now: float | None = None) -> None:
        """Record that `job` accepted `message_id`; refuses one it accepted before (blocking: call in a thread)."""
        now = time.time() if now is None else now
        self._db.execute("DELETE FROM webhook_ids WHERE expires < ?", (now,))
        live = self._db.rows("SELECT COUNT(*) FROM webhook_ids WHERE job = ?", (job,))[0][0]
        if live >= MAX_LIVE_IDS:
            raise SignatureRefused(f"more than {MAX_LIVE_IDS} deliveries to this job within {2 * TOLERANCE:g} s; "
                                   "try again later", "too many deliveries", status=429)
        added = self._db.execute("INSERT INTO webhook_ids (job, id, expires) VALUES (?, ?, ?) "
                                 "ON CONFLICT DO NOTHING",
                                 (job, message_id, timestamp + TOLERANCE))
        if added.rowcount == 0:
            raise SignatureRefused(f"webhook-id {message_id!r} was already delivered to this job (a replay, or a "
                                   "retry of a delivery that was accepted)", "id seen before")

    def forget(self, job: str) -> None:
        self._db.execute("DELETE FROM webhook_ids WHERE job = ?", (job,))
