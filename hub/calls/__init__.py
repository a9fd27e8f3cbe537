"""What happens to a call once it is in: one dispatch for every call, from every front.

Owns: the dispatch that checks policy, owners and rate limits, runs the call in one of its ways
(provider handler, relay fast path, internal call) and writes the audit record (`dispatch`); the
context a provider's handler gets (`context`); calls the hub makes for a caller, as jobs and agents
do (`internal`).

Must not: parse bytes (the fronts hand over parsed messages), know transports, or import `tools/`
or `connectors/`.
"""
