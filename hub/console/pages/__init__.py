"""The console's pages, one module each, in the order of the navigation bar.

A page module has `NAV` (its entries in the navigation bar: `hub.console.app.NavItem`) and `routes(console)` (its
Starlette routes, each endpoint wrapped by `console.page(handler, admin=...)`). Add a page: write its module and
its templates, and list it here.
"""

from hub.console.pages import (
    agents,
    audit,
    chat,
    connectors,
    files,
    jobs,
    knowledge,
    overview,
    secrets,
    settings,
    tokens,
    tools,
    users,
)

PAGES = [overview, chat, agents, tools, connectors, jobs, knowledge, files, audit, users, tokens, secrets, settings]
