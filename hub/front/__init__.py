"""How requests get in: the HTTP and stdio fronts.

Owns: the strict JSON parser every byte goes through (`wire`), the request gate that parses each
HTTP body once and admits or refuses it before the SDK sees it (`gate`), the ASGI front that routes
`/mcp` and the routes beside it (`http`), the uvicorn server with its header timeout
(`http_server`), resumable SSE streams (`resume`), the relay fast path that hands a call to an
upstream without building SDK models (`fastpath`) and the strict stdio front (`stdio`).

Must not: decide who may call what (that is `hub.calls.dispatch`), run tools, or hold provider
state. What a front accepts is handed on as the one parsed message; nothing here parses it again.
"""
