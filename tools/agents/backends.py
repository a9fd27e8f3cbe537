"""Where an agent's model runs: any OpenAI-compatible chat-completions endpoint (streamed), or the calling
client's own model through MCP sampling. Messages are kept in the chat-completions shape (system, user,
assistant with `tool_calls`, tool) and translated for sampling."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import mcp_types as types
import msgspec

from hub.observe import tracing
from hub.provider import CallContext, InputUnavailable
from hub.security.outbound import OutboundError, OutboundPolicy, OutboundRefused, host_of


class ModelSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    use: str = ""
    """An agent made with a tool: run on the model the admin configured under this name
    (`[providers.agents.models.NAME]`: its endpoint and key), choosing `model` among its `allowed_models` and
    the per-turn settings (temperature, max_tokens, timeout_seconds, parameters)."""
    backend: Literal["openai", "sampling"] = "openai"
    model: str = ""
    """The model id (openai); a hint for the client's choice (sampling)."""
    base_url: str = ""
    """e.g. http://127.0.0.1:11434/v1 (Ollama), https://openrouter.ai/api/v1, https://api.openai.com/v1."""
    api_key: str = ""
    """Use "${secret:NAME}"."""
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=200_000)] = 1024
    """Per model turn."""
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=600)] = 60
    price_input_per_million: Annotated[float, msgspec.Meta(ge=0)] = 0
    price_output_per_million: Annotated[float, msgspec.Meta(ge=0)] = 0
    """Prices (in your currency) per million tokens, to record the cost of each conversation."""
    parameters: dict[str, Any] = {}
    """Extra request fields passed as they are (top_p, seed, ...); never those the hub sets itself (`RESERVED`)."""
    allowed_models: list[str] = []
    """`[providers.agents.models.NAME]`: patterns of model ids agents made with tools may pick on this endpoint
    (default: none but `model`)."""
    name: str = ""
    """Filled in by the hub for a model from `[providers.agents.models.NAME]`: that name."""

    @property
    def label(self) -> str:
        own = f"{self.backend}:{self.model or 'client'}"
        return f"{self.name} ({own})" if self.name else own


RESERVED = frozenset({"model", "messages", "stream", "stream_options", "max_tokens", "temperature", "tools",
                      "tool_choice", "functions", "function_call"})
"""Request fields `parameters` may not set: the hub's own, and the tools it offers."""


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]
    raw_arguments: str = ""


@dataclass
class Turn:
    text: str
    tool_calls: list[ToolCall]
    usage: dict[str, int] = field(default_factory=dict)
    model: str = ""
    seconds: float = 0.0


class BackendError(Exception):
    """The model could not answer (the next model in the fallback list gets a chance)."""


def _check_url(spec: ModelSpec) -> str:
    if not spec.base_url.startswith(("http://", "https://")):
        raise BackendError(f"{spec.label}: base_url must be an http(s) URL (e.g. http://127.0.0.1:11434/v1)")
    return spec.base_url.rstrip("/") + "/chat/completions"


async def complete_openai(spec: ModelSpec, messages: list[dict[str, Any]], tools: list[types.Tool],
                          outbound: OutboundPolicy, *, trusted: bool) -> Turn:
    """One streamed chat completion through the hub's outbound policy; raises `BackendError` with the reason on
    any failure. An endpoint the admin configured (`trusted`) is allowed wherever it is, and its error messages
    are passed on (cut to a line); one a caller named is held to the policy, and only its status is told.
    With tracing on, a CLIENT span `chat MODEL` (GenAI conventions: model, tokens) whose trace the request
    carries on (`traceparent`)."""
    if not tracing.enabled():
        return await _complete_openai(spec, messages, tools, outbound, trusted=trusted)
    with tracing.span(f"chat {spec.model}", kind="client", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.request.model": spec.model,
            "gen_ai.request.max_tokens": spec.max_tokens}) as span:
        try:
            turn = await _complete_openai(spec, messages, tools, outbound, trusted=trusted)
        except BackendError:
            tracing.failed(span, "BackendError")
            raise
        if span is not None:
            span.set_attribute("gen_ai.response.model", turn.model)
            for ours, theirs in (("gen_ai.usage.input_tokens", "prompt_tokens"),
                                 ("gen_ai.usage.output_tokens", "completion_tokens")):
                if theirs in turn.usage:
                    span.set_attribute(ours, turn.usage[theirs])
        return turn


async def _complete_openai(spec: ModelSpec, messages: list[dict[str, Any]], tools: list[types.Tool],
                           outbound: OutboundPolicy, *, trusted: bool) -> Turn:
    url = _check_url(spec)
    if trusted:
        outbound = outbound.granting(hosts=[host_of(url)])
    # the extra parameters first: what the hub sets (the model above all: allowed_models) cannot be replaced
    body: dict[str, Any] = {**spec.parameters, "model": spec.model, "messages": messages, "stream": True,
                            "stream_options": {"include_usage": True}, "max_tokens": spec.max_tokens}
    if spec.temperature is not None:
        body["temperature"] = spec.temperature
    if tools:
        body["tools"] = [{"type": "function", "function": {"name": t.name, "description": t.description or "",
                                                            "parameters": t.input_schema}} for t in tools]
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    if spec.api_key:
        headers["Authorization"] = f"Bearer {spec.api_key}"
    tracing.inject(headers)
    started = time.perf_counter()
    text: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    usage: dict[str, int] = {}
    model = spec.model
    try:
        # json.dumps, not a faster encoder: it writes text a tool gave back with a lone surrogate as an escape
        # instead of failing the whole turn
        async with outbound.request("POST", url, data=json.dumps(body).encode(), headers=headers,
                                    timeout=spec.timeout_seconds, max_redirects=0) as response:
            if response.status >= 300:
                reason = await response.summary() if trusted else f"HTTP {response.status}"
                raise BackendError(f"{spec.label}: {reason}")
            if "text/event-stream" not in response.headers.get("Content-Type", ""):
                return _whole(await response.json(), spec, started)
            async for raw in response.lines():
                line = raw.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    break
                chunk = json.loads(data)
                model = chunk.get("model") or model
                if chunk.get("usage"):
                    usage = {k: int(v) for k, v in chunk["usage"].items() if isinstance(v, int)}
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") or {}
                    if delta.get("content"):
                        text.append(delta["content"])
                    for piece in delta.get("tool_calls") or []:
                        slot = calls.setdefault(int(piece.get("index", 0)), {"id": "", "name": "", "arguments": ""})
                        slot["id"] = piece.get("id") or slot["id"]
                        function = piece.get("function") or {}
                        slot["name"] += function.get("name") or ""
                        slot["arguments"] += function.get("arguments") or ""
    except BackendError:
        raise
    except OutboundRefused as exc:
        raise BackendError(f"{spec.label}: {exc}") from None
    except OutboundError as exc:
        message = str(exc)
        if "did not answer within" in message or isinstance(exc.__cause__, TimeoutError):
            raise BackendError(f"{spec.label}: no answer within {spec.timeout_seconds:g} s") from None
        raise BackendError(f"{spec.label}: {message}") from None
    except TimeoutError:
        raise BackendError(f"{spec.label}: no answer within {spec.timeout_seconds:g} s") from None
    except (ValueError, KeyError, AttributeError) as exc:
        raise BackendError(f"{spec.label}: the answer is not valid chat-completions JSON "
                           f"({type(exc).__name__})") from None
    return Turn("".join(text), [_call(c, n) for n, c in sorted(calls.items())], usage, model,
                time.perf_counter() - started)


def _call(raw: dict[str, Any], number: int) -> ToolCall:
    text = raw.get("arguments") or "{}"
    try:
        arguments = json.loads(text)
    except ValueError:
        arguments = None
    return ToolCall(raw.get("id") or f"call_{number}", raw.get("name", ""),
                    arguments if isinstance(arguments, dict) else {}, text if not isinstance(arguments, dict) else "")


def _whole(answer: dict[str, Any], spec: ModelSpec, started: float) -> Turn:
    message = (answer.get("choices") or [{}])[0].get("message") or {}
    calls = [_call({"id": c.get("id"), "name": (c.get("function") or {}).get("name", ""),
                    "arguments": (c.get("function") or {}).get("arguments", "")}, n)
             for n, c in enumerate(message.get("tool_calls") or [])]
    usage = {k: int(v) for k, v in (answer.get("usage") or {}).items() if isinstance(v, int)}
    return Turn(message.get("content") or "", calls, usage, answer.get("model") or spec.model,
                time.perf_counter() - started)


def to_sampling(messages: list[dict[str, Any]]) -> tuple[str | None, list[types.SamplingMessage]]:
    """Chat-completions messages as MCP sampling messages (tool calls and results as tool_use/tool_result)."""
    system: str | None = None
    out: list[types.SamplingMessage] = []
    for message in messages:
        role = message["role"]
        if role == "system":
            system = message["content"]
        elif role == "user":
            out.append(types.SamplingMessage(role="user", content=types.TextContent(type="text",
                                                                                    text=message["content"])))
        elif role == "assistant":
            blocks: list[Any] = []
            if message.get("content"):
                blocks.append(types.TextContent(type="text", text=message["content"]))
            for call in message.get("tool_calls") or []:
                blocks.append(types.ToolUseContent(type="tool_use", id=call["id"], name=call["function"]["name"],
                                                   input=json.loads(call["function"]["arguments"] or "{}")))
            out.append(types.SamplingMessage(role="assistant", content=blocks if len(blocks) != 1 else blocks[0]))
        elif role == "tool":
            result = types.ToolResultContent(type="tool_result", tool_use_id=message["tool_call_id"],
                                             content=[types.TextContent(type="text", text=message["content"])],
                                             is_error=message.get("is_error") or None)
            previous = out[-1] if out else None
            if previous is not None and previous.role == "user" and isinstance(previous.content, list) and all(
                    isinstance(b, types.ToolResultContent) for b in previous.content):
                previous.content.append(result)
            else:
                out.append(types.SamplingMessage(role="user", content=[result]))
    return system, out


async def complete_sampling(spec: ModelSpec, messages: list[dict[str, Any]], tools: list[types.Tool],
                            ctx: CallContext) -> Turn:
    """Ask the calling client's model (`sampling/createMessage`; in 2026-07-28 an input round)."""
    capabilities = ctx.client_capabilities
    sampling = capabilities.sampling if capabilities is not None else None
    offer = tools if sampling is not None and sampling.tools is not None else []
    system, converted = to_sampling(messages)
    params = types.CreateMessageRequestParams(
        messages=converted, system_prompt=system, max_tokens=spec.max_tokens, temperature=spec.temperature,
        model_preferences=types.ModelPreferences(hints=[types.ModelHint(name=spec.model)]) if spec.model else None,
        tools=[types.Tool(name=t.name, description=t.description, input_schema=t.input_schema) for t in offer] or None)
    started = time.perf_counter()
    try:
        result = await ctx.sample(params)
    except InputUnavailable as exc:
        raise BackendError(f"{spec.label}: {exc}") from None
    blocks = result.content if isinstance(result.content, list) else [result.content]
    text = "".join(b.text for b in blocks if isinstance(b, types.TextContent))
    calls = [ToolCall(b.id, b.name, dict(b.input or {})) for b in blocks if isinstance(b, types.ToolUseContent)]
    return Turn(text, calls, {}, getattr(result, "model", "") or "", time.perf_counter() - started)
