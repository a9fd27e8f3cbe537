"""The console of one hub, put together: its `Console` (hub/console/app.py) and the routes of every page."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.console.app import Console
from hub.console.pages import PAGES

if TYPE_CHECKING:
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.routing import BaseRoute

    from hub.catalog import ProviderSlot
    from hub.config import Config
    from hub.router import Router
    from hub.security.auth import Authenticator, Policy
    from hub.security.sessions import Sessions
    from hub.store import Store


def console_routes(config: Config, router: Router, store: Store, policy: Policy, slots: list[ProviderSlot],
                   auth: Authenticator, sessions: Sessions, security: TransportSecuritySettings) -> list[BaseRoute]:
    """The console's routes (the front mounts them beside `/mcp`)."""
    return Console(config, router, store, policy, auth, sessions, security, slots).routes(PAGES)
