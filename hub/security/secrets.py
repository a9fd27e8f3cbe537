"""The secret store: what the hub must keep secret (upstream tokens, mail passwords, client secrets).

Envelope encryption with AES-GCM (`cryptography`): each secret has its own random data key; the
data key is wrapped with the master key. The master key comes from `JUNCTION_SECRET_KEY`
(64 hex digits or urlsafe base64 of 32 bytes), else the OS keyring when the `keyring` package
and a usable backend are installed, else a key file in the data directory created with mode 0600.

Rotating the master key re-wraps every data key in one transaction (the secrets themselves are
not touched). A key file keeps the new key first and drops the old ones once nothing needs them;
a hub that meets a data key wrapped with a key it does not hold re-reads the key file, so a
rotation needs no restart. Values are never logged, listed or returned by the hub's tools; the
config refers to them as `"${secret:NAME}"`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets as _random
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.store import Store

ENV_KEY = "JUNCTION_SECRET_KEY"
KEYRING_SERVICE = "junction"
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


class SecretError(Exception):
    """A secret cannot be stored or read; the message says why (never the value)."""


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"junction-secret-key:" + key).hexdigest()[:12]


def _parse_key(text: str, where: str) -> bytes:
    text = text.strip()
    try:
        key = bytes.fromhex(text) if len(text) == 64 else base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, binascii.Error):
        raise SecretError(f"{where} is not a key (64 hex digits or base64 of 32 bytes)") from None
    if len(key) != 32:
        raise SecretError(f"{where} is not a 256-bit key ({len(key)} bytes)")
    return key


class MasterKeys:
    """Where the master key lives, and the keys currently known (newest first)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "secret.key"
        self.source = "environment"
        self.keys: list[bytes] = []
        self.load()

    def load(self) -> None:
        env = os.environ.get(ENV_KEY)
        if env:
            self.source, self.keys = "environment", [_parse_key(env, ENV_KEY)]
            return
        stored = _keyring_get()
        if stored is not None:
            self.source = "keyring"
            self.keys = [_parse_key(line, "the keyring's junction key") for line in stored.split() if line]
            return
        self.source = "file"
        try:
            lines = self.path.read_text().split()
        except FileNotFoundError:
            lines = []
        self.keys = [_parse_key(line, str(self.path)) for line in lines if line]
        if not self.keys:
            self.keys = [AESGCM.generate_key(256)]
            self._write_file()

    def _write_file(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(k.hex() for k in self.keys) + "\n")
        os.replace(tmp, self.path)

    def save(self) -> None:
        if self.source == "environment":
            return  # the caller shows the new key; the environment is not ours to write
        if self.source == "file":
            self._write_file()
        elif self.source == "keyring":
            _keyring_set("\n".join(k.hex() for k in self.keys))

    def find(self, wanted: str) -> bytes | None:
        for key in self.keys:
            if key_id(key) == wanted:
                return key
        return None


def _keyring_get() -> str | None:
    try:
        import keyring  # optional
        from keyring.backends.fail import Keyring as FailKeyring
    except ImportError:
        return None
    try:
        if isinstance(keyring.get_keyring(), FailKeyring):
            return None
        value = keyring.get_password(KEYRING_SERVICE, "master-key")
        if value is None:
            value = AESGCM.generate_key(256).hex()
            keyring.set_password(KEYRING_SERVICE, "master-key", value)
        return value
    except Exception:  # no usable backend (headless machines): fall back to the key file
        return None


def _keyring_set(value: str) -> None:
    import keyring

    keyring.set_password(KEYRING_SERVICE, "master-key", value)


class SecretStore:
    def __init__(self, store: Store, data_dir: Path) -> None:
        self.store = store
        self.keys = MasterKeys(data_dir)

    @staticmethod
    def check_name(name: str) -> None:
        if not name or len(name) > 100 or not set(name) <= _NAME_CHARS:
            raise SecretError(f"secret names use letters, digits, _ . - (1-100 characters), not {name!r}")

    def set(self, name: str, value: str) -> None:
        self.check_name(name)
        self.store.put_secret(name, *self.seal(name.encode(), value))

    def get(self, name: str) -> str:
        row = self.store.get_secret(name)
        if row is None:
            raise SecretError(f"no secret named '{name}' (set it with `junction secret set {name}`)")
        return self.unseal(name.encode(), *row, what=f"secret '{name}'")

    # the envelope (also the vault's, hub/security/vault.py) -------------------------------------------
    def seal(self, context: bytes, value: str) -> tuple[str, bytes, bytes]:
        """(master key id, wrapped data key, ciphertext) of `value`, both bound to `context` (what it is stored as:
        a row moved to another name or user does not decrypt)."""
        data_key = AESGCM.generate_key(256)
        master = self.keys.keys[0]
        nonce, wrap_nonce = _random.token_bytes(12), _random.token_bytes(12)
        ciphertext = AESGCM(data_key).encrypt(nonce, value.encode(), context)
        wrapped = AESGCM(master).encrypt(wrap_nonce, data_key, context)
        return key_id(master), wrap_nonce + wrapped, nonce + ciphertext

    def unseal(self, context: bytes, wanted: str, wrapped: bytes, sealed: bytes, *, what: str) -> str:
        master = self.keys.find(wanted)
        if master is None:
            self.keys.load()  # rotated meanwhile by `junction secret rotate-key`
            master = self.keys.find(wanted)
        if master is None:
            raise SecretError(f"{what} was sealed with a master key this hub does not have "
                              f"(key {wanted}; the key source is the {self.keys.source})")
        try:
            data_key = AESGCM(master).decrypt(wrapped[:12], wrapped[12:], context)
            return AESGCM(data_key).decrypt(sealed[:12], sealed[12:], context).decode()
        except Exception:
            raise SecretError(f"{what} does not decrypt (damaged, or moved from another name)") from None

    def names(self) -> list[tuple[str, float]]:
        return self.store.secret_names()

    def remove(self, name: str) -> bool:
        return self.store.delete_secret(name)

    def rotate(self) -> bytes:
        """Wrap every data key with a new master key and make it the key; returns it.

        From a key file or the keyring, hubs running meanwhile pick the new key up by themselves.
        From `JUNCTION_SECRET_KEY`, the caller must put the returned key there for the next start."""
        new = AESGCM.generate_key(256)
        self.keys.keys.insert(0, new)
        self.keys.save()  # first, so a hub reading a re-wrapped secret finds the new key
        try:
            self._rewrap(new)
        except SecretError:  # nothing was re-wrapped: the old keys stay the keys
            self.keys.keys.remove(new)
            self.keys.save()
            raise
        self.keys.keys = [new]
        self.keys.save()
        return new

    def _rewrap(self, new: bytes) -> None:
        secrets = [(name, name.encode(), wanted, wrapped) for name, wanted, wrapped in self.store.all_wrapped_keys()]
        vault = [((user, connector, name), vault_context(user, connector, name), wanted, wrapped)
                 for user, connector, name, wanted, wrapped in self.store.all_vault_wrapped_keys()]
        rewrapped: list[list[tuple[Any, str, bytes]]] = [[], []]
        tables: tuple[list[tuple[Any, bytes, str, bytes]], ...] = (secrets, vault)
        for out, rows in zip(rewrapped, tables):
            for row_key, context, wanted, wrapped in rows:
                old = self.keys.find(wanted)
                if old is None:
                    raise SecretError(f"secret {row_key!r} uses a master key that is not available (key {wanted})")
                try:
                    data_key = AESGCM(old).decrypt(wrapped[:12], wrapped[12:], context)
                except Exception:  # nothing is re-wrapped: the rotation stops before it changes anything
                    raise SecretError(f"secret {row_key!r} does not decrypt (damaged, or moved from another name): "
                                      "remove it, then rotate") from None
                nonce = _random.token_bytes(12)
                out.append((row_key, key_id(new), nonce + AESGCM(new).encrypt(nonce, data_key, context)))
        self.store.replace_wrapped_keys(rewrapped[0], rewrapped[1])


def vault_context(user: str, connector: str, name: str) -> bytes:
    """What a vault entry is sealed to: its user, connector and name."""
    return b"vault\0" + user.encode() + b"\0" + connector.encode() + b"\0" + name.encode()


def resolver(store: Store, data_dir: Path) -> tuple[SecretStore, object]:
    """A `${secret:NAME}` resolver for `load_config`."""
    secret_store = SecretStore(store, data_dir)

    def resolve(name: str) -> str:
        return secret_store.get(name)

    return secret_store, resolve

