"""The vault: each user's own credentials for connectors (a personal API key; later the OAuth tokens a user links).

Owns: entries keyed by (user, connector, name), sealed with the secret store's envelope (a data key per entry, wrapped
with the master key, both bound to the entry's user, connector and name: a row copied to another user does not
decrypt), their kind, non-secret metadata and expiry; rotation re-wraps them with the secrets. Values are never
listed, logged or returned by a tool; `entries()` gives names and dates only.
Must not: talk to an upstream (connectors/ resolve `${user_secret:NAME}` with `get`), decide who may read an entry
(only the hub's own code, for the calling user, ever does).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hub.security.secrets import SecretError, SecretStore, vault_context

USER_SECRET_REF = re.compile(r"\$\{user_secret:([A-Za-z0-9_.-]{1,100})\}")
"""How a connector's header or environment value names a value each user gives for themselves."""


@dataclass(frozen=True)
class VaultEntry:
    user: str
    connector: str
    name: str
    kind: str
    meta: dict[str, Any]
    expires: float | None
    updated: float


class Vault:
    def __init__(self, secrets: SecretStore) -> None:
        self.secrets = secrets
        self.store = secrets.store

    def set(self, user: str, connector: str, name: str, value: str, *, kind: str = "key",
            meta: dict[str, Any] | None = None, expires: float | None = None) -> None:
        SecretStore.check_name(name)
        if not user or not connector:
            raise SecretError("a vault entry needs a user and a connector")
        sealed = self.secrets.seal(vault_context(user, connector, name), value)
        self.store.put_vault(user, connector, name, kind, sealed, json.dumps(meta or {}), expires)

    def get(self, user: str, connector: str, name: str) -> str | None:
        """The value, or None if this user has not given one."""
        row = self.store.get_vault(user, connector, name)
        if row is None:
            return None
        wanted, wrapped, sealed = row[:3]
        return self.secrets.unseal(vault_context(user, connector, name), wanted, wrapped, sealed,
                                   what=f"{user}'s '{name}' for connector '{connector}'")

    def entries(self, user: str | None = None, connector: str | None = None) -> list[VaultEntry]:
        return [VaultEntry(u, c, n, kind, json.loads(meta), expires, updated)
                for u, c, n, kind, meta, expires, updated in self.store.vault_entries(user, connector)]

    def remove(self, user: str, connector: str, name: str | None = None) -> int:
        """Forget one entry (or all of a user's for a connector); how many went."""
        return self.store.delete_vault(user, connector, name)


def user_secret_names(*tables: Mapping[str, object]) -> list[str]:
    """The `${user_secret:NAME}` names the values of these tables (headers, environment) use, in order, once each."""
    names: list[str] = []
    for table in tables:
        for value in table.values():
            for name in USER_SECRET_REF.findall(str(value)):
                if name not in names:
                    names.append(name)
    return names
