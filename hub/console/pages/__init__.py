"""The console's pages, one module each, in the order of the navigation bar.

A page module has `NAV` (its entries in the navigation bar: `hub.console.app.NavItem`) and `routes(console)` (its
Starlette routes, each endpoint wrapped by `console.page(handler, admin=...)`). Add a page: write its module and
its templates, and list it here.
"""

from hub.console.pages import audit, connectors, jobs, knowledge, overview, tools

PAGES = [overview, tools, connectors, jobs, knowledge, audit]
