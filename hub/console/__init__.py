"""The web console: the hub's pages for people, at `/` (MCP stays at `/mcp`).

Server-rendered (Jinja2 templates in `templates/`), progressively enhanced with htmx (vendored in `static/`, no CDN,
no build step), under a strict Content-Security-Policy: no inline script or style anywhere. `app.py` holds what
every page shares (who is signed in, form tokens, the page frame, calling tools); `pages/` holds one module per
page. What a page shows and does, it asks of the catalog through the one dispatch, as the person signed in: the
same policy, owners and audit trail as an MCP call.
"""
