"""Who is calling and what the hub will do for them.

Owns: auth modes, principals, tokens and the policy (`auth`); the built-in OAuth 2.1 authorization
server with its sign-in and consent pages (`signin`); failed sign-in counting (`lockout`); per-rule
rate limits (`ratelimit`); the encrypted secret store and `${secret:...}` references (`secrets`);
the outbound policy for every request the hub makes on a caller's behalf (`outbound`).

Must not: route or run calls (the dispatch asks these modules; they never call it), or import
`tools/` or `connectors/`.
"""
