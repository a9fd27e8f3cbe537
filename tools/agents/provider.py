"""Agents any MCP client can call like a tool (`[providers.agents]`): a persona, a model, a tool set and
knowledge, run as a loop (model, tools, model, ...) inside the hub.

```toml
[providers.agents.agents.helpdesk]
preset = "customer_support"                 # instructions and tools from a preset, changed below
knowledge = ["handbook"]
models = [                                  # tried in order: the next one when a model fails
  {backend = "openai", base_url = "http://127.0.0.1:11434/v1", model = "llama3.2"},
  {backend = "sampling"},                   # the calling client's own model, no key needed
]
```

Each agent is the tool `agents__NAME` (`message`, optional `conversation_id`) and a prompt of the same
name. Every step is reported as a progress notification; cancelling the call stops the loop. The tools
an agent may use are its patterns over the whole catalog, always cut down to what its caller may use.
Conversations are stored (`agents.db`) and readable as `agent://NAME/conversations/ID` by whoever had
them, while the run goes too: the conversation is stored (status `running`) before the first model call and
after every step, and the first progress notification of a call names it (`conversation ID`). Each assistant
turn keeps the model calls it took (`model_calls`), and a run that stopped without an answer ends with a
`notice` message saying why. Agents can call other agents; the hub refuses cycles and deep nesting.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
import mcp_types as types
import msgspec

from hub.catalog import OWNER_META
from hub.db import Database
from hub.provider import CallContext, MetricSample, Provider, ToolError, UnknownTool
from hub.security.auth import LOCAL_OWNER, Principal
from hub.security.outbound import OutboundError
from tools.agents.backends import RESERVED, BackendError, ModelSpec, Turn, complete_openai, complete_sampling
from tools.agents.presets import PRESETS

log = logging.getLogger("junction.agents")
NAME = r"^[a-z0-9][a-z0-9_-]{0,47}$"
MANAGE = ("list", "presets", "create", "update", "delete", "conversations", "export")
MAX_TOOL_TEXT = 20_000
NOTES = frozenset({"is_error", "model_calls"})
"""Keys of a stored message that are the hub's notes on it (a tool result that failed, the model calls a turn
took), never sent to a model."""
WILDCARDS = frozenset("*?[")


class AgentSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    preset: str = ""
    description: str = ""
    instructions: str = ""
    models: list[ModelSpec | str] = []
    """Tried in order; the first that answers wins (fallback on errors and timeouts). A string names a model
    the admin configured (`[providers.agents.models.NAME]`)."""
    model: ModelSpec | str | None = None
    """Shorthand for a single model."""
    tools: list[str] = []
    """Patterns over public tool names ("rag__search", "mail__*", "github__*")."""
    knowledge: list[str] = []
    """Knowledge-base namespaces searched for every message (the passages go to the model)."""
    max_steps: Annotated[int, msgspec.Meta(ge=1, le=100)] = 8
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=2_000_000)] = 32_000
    """The budget of output tokens per call (all steps together)."""
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 300


class AgentsConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    agents: dict[Annotated[str, msgspec.Meta(pattern=NAME)], AgentSpec] = {}
    models: dict[Annotated[str, msgspec.Meta(pattern=NAME)], ModelSpec] = {}
    """Model endpoints by name, each with its own key ("${secret:NAME}"): what agents made with tools run on."""
    allow_custom_endpoints: bool = False
    max_agents_per_user: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 50
    """Agents one user may make with tools (the local user has no such limit)."""
    """Whether agents made with tools may name an endpoint of their own (`base_url`): never with a key, and
    only where the hub's outbound policy lets the hub connect."""


def _text(value: str) -> types.TextContent:
    return types.TextContent(type="text", text=value)


def _stored_json(value: Any) -> str:
    """JSON text SQLite can hold: as it is, unless some text in it (a tool's answer, say) has a lone surrogate,
    which only an escape can carry."""
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value)
    return text


def _model_given(model: ModelSpec) -> dict[str, Any]:
    """A resolved model of an agent made with a tool, as `create` takes it (never a key: such agents have none)."""
    if model.name:
        return {"use": model.name, "model": model.model}
    if model.backend == "sampling":
        return {"backend": "sampling", **({"model": model.model} if model.model else {})}
    return {"backend": model.backend, "base_url": model.base_url, "model": model.model}


def _owned(agent: Any) -> dict[str, Any] | None:
    """The catalog `_meta` of an agent made with a tool: its owner, so only they (and admins) see and reach it."""
    return {OWNER_META: agent.owner} if agent.owner is not None else None


class AgentError(ToolError, ValueError):
    """An agent definition or request that cannot be used; the message says what and where."""


def resolve(spec: AgentSpec, where: str, named: dict[str, ModelSpec] | None = None, *, made_by_tool: bool = False,
            custom_endpoints: bool = False) -> AgentSpec:
    """Fill a preset in (the spec's own values win), put the named models in, and check what is needed to run.

    An agent made with a tool (`made_by_tool`) never carries a key or expands a reference: it runs on models the
    admin configured by name, the caller's own model (`sampling`), or, if the admin allows custom endpoints, an
    endpoint without credentials."""
    if spec.preset:
        if spec.preset not in PRESETS:
            raise AgentError(f"{where}.preset: no preset {spec.preset!r} (presets: {', '.join(sorted(PRESETS))})")
        base = PRESETS[spec.preset]
        spec = msgspec.structs.replace(
            spec, description=spec.description or base["description"],
            instructions=spec.instructions or base["instructions"], tools=spec.tools or list(base["tools"]),
            max_steps=spec.max_steps if spec.max_steps != 8 else base.get("max_steps", 8))
    given = list(spec.models) + ([spec.model] if spec.model is not None else [])
    models: list[ModelSpec] = []
    named = named or {}
    for number, model in enumerate(given or [ModelSpec(backend="sampling")]):
        here = f"{where}.models[{number}]"
        if isinstance(model, str):
            model = ModelSpec(use=model)
        reserved = sorted(RESERVED & set(model.parameters))
        if reserved:
            raise AgentError(f"{here}.parameters.{reserved[0]}: set by the hub, not by parameters")
        if made_by_tool and not model.use and (model.name or model.allowed_models):
            raise AgentError(f"{here}.{'name' if model.name else 'allowed_models'}: only a model the admin "
                             "configured has that")
        if model.use:
            models.append(_on_named(model, named, here))
            continue
        if made_by_tool and model.api_key:
            raise AgentError(f"{here}.api_key: agents made with tools carry no keys; use a model the admin "
                             f"configured ({_named_list(named)})")
        if made_by_tool and model.backend == "openai" and not custom_endpoints:
            raise AgentError(f"{here}: agents made with tools run on models the admin configured "
                             f"({_named_list(named)}) or on the caller's own ({{\"backend\": \"sampling\"}}); "
                             "endpoints of their own need [providers.agents] allow_custom_endpoints = true")
        if model.backend == "openai" and (not model.base_url or not model.model):
            raise AgentError(f"{here}: the openai backend needs base_url and model")
        models.append(model)
    if not spec.instructions:
        raise AgentError(f"{where}.instructions: an agent needs instructions (or a preset)")
    return msgspec.structs.replace(spec, models=models, model=None)


AGENTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS agents (name TEXT PRIMARY KEY, spec TEXT NOT NULL, owner TEXT, created REAL, updated REAL);
CREATE TABLE IF NOT EXISTS conversations (id TEXT PRIMARY KEY, agent TEXT NOT NULL, owner TEXT, created REAL,
    updated REAL, status TEXT, messages TEXT NOT NULL, usage TEXT);
CREATE INDEX IF NOT EXISTS conversations_by_agent ON conversations (agent, updated);
"""


def _named_list(named: dict[str, ModelSpec]) -> str:
    return ("configured: " + ", ".join(sorted(named))) if named else \
        "none is configured yet: the admin adds them as [providers.agents.models.NAME]"


def _on_named(given: ModelSpec, named: dict[str, ModelSpec], here: str) -> ModelSpec:
    """`{"use": NAME, ...}`: the configured model NAME, with the model id and per-turn settings an agent may pick."""
    base = named.get(given.use)
    if base is None:
        raise AgentError(f"{here}: no model named {given.use!r} ({_named_list(named)})")
    for key in ("base_url", "api_key", "allowed_models"):
        if getattr(given, key):
            raise AgentError(f"{here}.{key}: a model used by name keeps the configured {key}")
    model = given.model or base.model
    if model != base.model and not any(fnmatch.fnmatchcase(model, p) for p in base.allowed_models):
        raise AgentError(f"{here}.model: {model!r} is not a model agents may pick on {given.use!r} (allowed: "
                         f"{', '.join([base.model, *base.allowed_models])})")
    return msgspec.structs.replace(
        base, name=given.use, model=model, temperature=given.temperature if given.temperature is not None else
        base.temperature, max_tokens=given.max_tokens if given.max_tokens != 1024 else base.max_tokens,
        timeout_seconds=given.timeout_seconds if given.timeout_seconds != 60 else base.timeout_seconds,
        parameters={**base.parameters, **given.parameters}, allowed_models=[])


@dataclass
class Agent:
    spec: AgentSpec
    """Resolved: preset filled in, named models put in."""
    source: str
    """`config` (the admin's, everyone's within the policy) or `tool` (made at run time)."""
    owner: str | None = None
    """Who made it with a tool (`Principal.owner`); only they and admins reach it."""
    version: float = 0.0
    """When it was last changed in the store: on a shared store, a replica that finds another takes that one."""


class AgentsProvider(Provider):
    config_type = AgentsConfig
    description = "Agents (persona + model + tools + knowledge) any client can call like a tool"

    def __init__(self, host: Any, config: AgentsConfig | None = None) -> None:
        super().__init__(host, config or AgentsConfig())
        self.agents: dict[str, Agent] = {}
        for name, spec in self.config.agents.items():
            if name in MANAGE:
                raise ValueError(f"agents.{name}: the name is taken by a tool of this provider")
            self.agents[name] = Agent(resolve(spec, f"agents.{name}", self.config.models), "config")
        self.store: Database | None = None
        self._tokens: dict[tuple[str, str], int] = {}
        """Tokens used since the start, by (model, input|output): `/metrics`. The model is the admin's name for
        it (`[providers.agents.models.NAME]`), or `(own)` for an endpoint an agent names itself, `(client)` for
        the client's model: never an id a caller chose."""
        self._cost: dict[str, float] = {}
        self._unusable: dict[str, float] = {}
        """Stored agents this hub cannot use, by the version it said so of."""

    def metric_samples(self) -> list[MetricSample]:
        samples = [MetricSample("agent_tokens", "Model tokens agents used, by model and direction", "counter",
                                {"model": model, "direction": direction}, count)
                   for (model, direction), count in sorted(self._tokens.items())]
        samples += [MetricSample("agent_cost", "What agents' model calls cost (the models' prices), by model",
                                 "counter", {"model": model}, cost) for model, cost in sorted(self._cost.items())]
        return samples

    def _resolve_made(self, spec: AgentSpec, where: str) -> AgentSpec:
        return resolve(spec, where, self.config.models, made_by_tool=True,
                       custom_endpoints=self.config.allow_custom_endpoints)

    async def start(self) -> None:
        self.store = self.host.database("agents")
        self.store.script(AGENTS_SCHEMA)
        # Before owners were principals, the local user's conversations were "local" (a possible user name).
        self.store.execute("UPDATE conversations SET owner = ? WHERE owner = 'local'", (LOCAL_OWNER,))
        self.store.execute("UPDATE agents SET owner = ? WHERE owner = 'local' OR owner IS NULL", (LOCAL_OWNER,))
        if self.store.engine == "sqlite":
            # a run the hub was stopped in the middle of goes on no more (on a shared store, the running ones
            # may be other replicas')
            self.store.execute("UPDATE conversations SET status = 'interrupted' WHERE status = 'running'")
        self._take_in()
        if self.store.engine != "sqlite":
            self.host.spawn(self._keep_in_step)

    def _take_in(self) -> bool:
        """The agents made with tools as the store has them (made, changed or deleted through any replica);
        whether any changed."""
        assert self.store is not None
        changed = False
        stored = {name: (raw, owner, updated or 0.0) for name, raw, owner, updated in
                  self.store.rows("SELECT name, spec, owner, updated FROM agents")}
        for name in [n for n, agent in self.agents.items() if agent.source == "tool" and n not in stored]:
            del self.agents[name]
            changed = True
        for name, (raw, owner, updated) in stored.items():
            known = self.agents.get(name)
            if known is not None and (known.source == "config" or known.version == updated) or \
                    self._unusable.get(name) == updated:
                continue
            try:
                spec = self._resolve_made(msgspec.json.decode(raw, type=AgentSpec), f"agents.{name}")
            except (AgentError, msgspec.ValidationError) as exc:
                self._unusable[name] = updated  # said once for this version, not every second
                log.error("agents: stored agent %r cannot be used: %s", name, exc)
                continue
            self.agents[name] = Agent(spec, "tool", owner, updated)
            changed = True
        return changed

    async def _keep_in_step(self) -> None:
        """On a shared store: take in, every second, the agents other replicas made, changed or deleted."""
        while True:
            await anyio.sleep(1.0)
            try:
                if self._take_in():
                    self.host.catalog_changed()
            except Exception:  # the database away for a moment: the next second tries again
                log.exception("agents: could not compare agents with the store")

    async def stop(self) -> None:
        if self.store is not None:
            self.store.close()

    # catalog -----------------------------------------------------------------------------------------
    async def list_tools(self) -> list[types.Tool]:
        name = {"type": "string", "pattern": NAME}
        spec_props = {
            "preset": {"type": "string", "enum": sorted(PRESETS)}, "description": {"type": "string"},
            "instructions": {"type": "string"}, "models": {"type": "array", "items": {"type": "object"}},
            "tools": {"type": "array", "items": {"type": "string"}},
            "knowledge": {"type": "array", "items": {"type": "string"}},
            "max_steps": {"type": "integer", "minimum": 1, "maximum": 100},
            "max_tokens": {"type": "integer", "minimum": 1}, "timeout_seconds": {"type": "number"}}
        ro = types.ToolAnnotations(read_only_hint=True)
        tools = [
            types.Tool(name=agent, description=f"Agent: {a.spec.description or a.spec.instructions[:200]}",
                       input_schema={"type": "object", "required": ["message"], "properties": {
                           "message": {"type": "string", "description": "what to ask or tell the agent"},
                           "conversation_id": {"type": "string", "description": "continue this conversation"}}},
                       annotations=types.ToolAnnotations(open_world_hint=True), meta=_owned(a))
            for agent, a in sorted(self.agents.items())
        ]
        return tools + [
            types.Tool(name="list", description="The agents you may use: the hub's own and yours (description, "
                       "instructions, models, tools, knowledge, owner; for agents made with create, their models as "
                       "create takes them).",
                       input_schema={"type": "object", "properties": {"all": {
                           "type": "boolean", "description": "admins: every user's agents"}}}, annotations=ro),
            types.Tool(name="presets", description="Persona presets to start an agent from, and the models an "
                       "agent made with create may run on.",
                       input_schema={"type": "object", "properties": {}}, annotations=ro),
            types.Tool(name="create", description="Create an agent, from a preset or from scratch (tools named "
                       "outright must be ones you may use).",
                       input_schema={"type": "object", "required": ["name"],
                                     "properties": {"name": name, **spec_props}}),
            types.Tool(name="update", description="Change an agent made with create.",
                       input_schema={"type": "object", "required": ["name"],
                                     "properties": {"name": name, **spec_props}}),
            types.Tool(name="delete", description="Delete an agent made with create (its conversations too), or "
                       "one conversation of yours (conversation_id instead of name).",
                       input_schema={"type": "object", "properties": {"name": name,
                                                                      "conversation_id": {"type": "string"}}},
                       annotations=types.ToolAnnotations(destructive_hint=True)),
            types.Tool(name="conversations", description="Your conversations with an agent, newest first.",
                       input_schema={"type": "object", "required": ["agent"], "properties": {
                           "agent": name, "limit": {"type": "integer", "minimum": 1, "maximum": 200}}},
                       annotations=ro),
            types.Tool(name="export", description="One of your conversations in full (messages, tool calls, usage).",
                       input_schema={"type": "object", "required": ["conversation_id"], "properties": {
                           "conversation_id": {"type": "string"}}}, annotations=ro),
        ]

    async def list_prompts(self) -> list[types.Prompt]:
        return [types.Prompt(name=agent, description=f"Talk to the agent {agent}: {a.spec.description}"[:300],
                             arguments=[types.PromptArgument(name="message", description="your first message",
                                                             required=False)], meta=_owned(a))
                for agent, a in sorted(self.agents.items())]

    async def get_prompt(self, name: str, arguments: dict[str, str], ctx: CallContext) -> types.GetPromptResult:
        if name not in self.agents or not self._reaches(self.agents[name], ctx):
            raise ValueError(f"no agent named {name!r}")
        spec = self.agents[name].spec
        text = (f"{spec.instructions}\n\nWork with the tool agents__{name} (pass the user's messages as `message`, "
                "and the `conversation_id` it returns to continue).")
        if arguments.get("message"):
            text += f"\n\nThe user's first message: {arguments['message']}"
        return types.GetPromptResult(description=spec.description or None, messages=[
            types.PromptMessage(role="user", content=_text(text))])

    async def list_resource_templates(self) -> list[types.ResourceTemplate]:
        return [types.ResourceTemplate(uri_template="agent://{name}/conversations/{id}", name="agent conversations",
                                       mime_type="application/json",
                                       description="a conversation with an agent (yours only)")]

    async def list_resources(self) -> list[types.Resource]:
        return [types.Resource(uri=f"agent://{agent}", name=f"agent {agent}", mime_type="application/json",
                               description=a.spec.description or None, meta=_owned(a))
                for agent, a in sorted(self.agents.items())]

    def owns_uri(self, uri: str) -> bool:
        return uri.startswith("agent://")

    async def read_resource(self, uri: str, ctx: CallContext) -> types.ReadResourceResult:
        match = re.fullmatch(r"agent://([a-z0-9_-]+)(?:/conversations/([A-Za-z0-9_-]+))?", uri)
        if match is None or match.group(1) not in self.agents or not self._reaches(self.agents[match.group(1)], ctx):
            raise LookupError(uri)
        if match.group(2) is None:
            body: Any = self._describe(match.group(1), self.agents[match.group(1)])
        else:
            try:
                body = self._conversation(match.group(2), ctx)
            except AgentError:
                raise LookupError(uri) from None
            if body["agent"] != match.group(1):
                raise LookupError(uri)
        return types.ReadResourceResult(contents=[types.TextResourceContents(
            uri=uri, mime_type="application/json", text=json.dumps(body, ensure_ascii=False, default=str))])

    # calls -------------------------------------------------------------------------------------------
    async def call_tool(self, name: str, arguments: dict[str, Any], ctx: CallContext
                        ) -> types.CallToolResult:
        if name in self.agents:
            # the hub keeps others' agents from callers already; a provider does not lean on that alone
            if not self._reaches(self.agents[name], ctx):
                raise AgentError(f"no agent named {name!r}")
            return await self._converse(name, arguments, ctx)
        try:
            handler = self.tool_handler(name)
        except UnknownTool:
            raise AgentError(f"no agent or tool named {name!r}") from None
        return await handler(arguments, ctx)

    def _describe(self, name: str, agent: Agent) -> dict[str, Any]:
        spec = agent.spec
        described = {"name": name, "description": spec.description, "preset": spec.preset or None,
                     "instructions": spec.instructions, "models": [m.label for m in spec.models], "tools": spec.tools,
                     "knowledge": spec.knowledge, "max_steps": spec.max_steps, "max_tokens": spec.max_tokens,
                     "timeout_seconds": spec.timeout_seconds, "source": agent.source, "owner": agent.owner}
        if agent.source == "tool":  # what update takes (the admin's agents may hold endpoints and keys: never shown)
            described["model_specs"] = [_model_given(m) for m in spec.models]
        return described

    def _who(self, ctx: CallContext) -> Principal:
        return self.host.caller(ctx)

    def _owner(self, ctx: CallContext) -> str:
        """Whose conversations and agents: the caller's (`Principal.owner`)."""
        return self._who(ctx).owner

    def _reaches(self, agent: Agent, ctx: CallContext) -> bool:
        """The owner and admins reach an agent made with a tool; the config's are everyone's (within the policy)."""
        who = self._who(ctx)
        return agent.owner is None or who.owner == agent.owner or who.is_admin

    def _agent(self, name: Any, ctx: CallContext, what: str) -> Agent:
        """An agent the caller may `what` (an agent of someone else's does not exist for them)."""
        agent = self.agents.get(name) if isinstance(name, str) else None
        if agent is None or not self._reaches(agent, ctx):
            raise AgentError(f"name: no agent named {name!r}")
        if agent.source == "config" and what in ("update", "delete"):
            raise AgentError(f"agent {name!r} is defined in the config file; {'change' if what == 'update' else 'remove'}"
                             " it there")
        return agent

    def _conversation(self, conversation_id: str, ctx: CallContext) -> dict[str, Any]:
        assert self.store is not None
        rows = self.store.rows("SELECT id, agent, owner, created, updated, status, messages, usage FROM conversations "
                              "WHERE id = ?", (conversation_id,))
        if not rows or (rows[0][2] != self._owner(ctx) and not self._who(ctx).is_admin):
            raise AgentError(f"conversation_id: no conversation {conversation_id!r} of yours")
        r = rows[0]
        return {"id": r[0], "agent": r[1], "created": r[3], "updated": r[4], "status": r[5],
                "messages": json.loads(r[6]), "usage": json.loads(r[7] or "{}")}

    def _offered(self, spec: AgentSpec, me: str, ctx: CallContext) -> list[types.Tool]:
        """The catalog tools this agent may use for this caller: its patterns, minus what the caller may not use."""
        catalog = self.host.tools()
        caller = self.host.caller(ctx)
        prefix = me.rsplit("__", 1)[0] + "__" if "__" in me else ""
        own = {f"{prefix}{m}" for m in MANAGE} | {me}
        return [t for t in catalog if t.name not in own and any(fnmatch.fnmatchcase(t.name, p) for p in spec.tools)
                and self.host.allows(caller, t.name)]

    async def _converse(self, name: str, arguments: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        spec = self.agents[name].spec
        message = arguments.get("message")
        if not isinstance(message, str) or not message.strip():
            raise AgentError("message: what to ask the agent (text)")
        public = f"{self.host.prefix}__{name}" if self.host.prefix else name
        conversation_id = arguments.get("conversation_id")
        history: list[dict[str, Any]] = []
        usage: dict[str, Any] = {"prompt_tokens": 0, "completion_tokens": 0, "cost": 0.0, "model_calls": []}
        if conversation_id is not None:
            if not isinstance(conversation_id, str):
                raise AgentError("conversation_id: a conversation id (text)")
            # as it was when the call came: an input round re-runs this handler after steps were stored
            previous = ctx.state.get("previous") or self._conversation(conversation_id, ctx)
            ctx.state["previous"] = previous
            if previous["agent"] != name:
                raise AgentError(f"conversation_id: {conversation_id!r} is a conversation with {previous['agent']!r}")
            history = previous["messages"]
            usage = {**usage, **previous["usage"], "model_calls": []}
        else:
            conversation_id = ctx.state.setdefault("conversation_id", secrets.token_urlsafe(12)) \
                if ctx is not None else secrets.token_urlsafe(12)
        tools = self._offered(spec, public, ctx)
        offered = {t.name for t in tools}
        system = spec.instructions
        if spec.knowledge:
            system += await self._knowledge(spec, message, ctx, public)
        messages = [{"role": "system", "content": system},
                    *[m for m in history if m["role"] not in ("system", "notice")], {"role": "user", "content": message}]
        self._save(conversation_id, name, ctx, messages, usage, "running")
        await self._progress(ctx, 0, spec, f"conversation {conversation_id}")
        cache: dict[str, Any] = ctx.state.setdefault("tool_results", {}) if ctx is not None else {}
        status, answer, steps = "ok", "", 0
        spent = tried = 0
        try:
            with anyio.fail_after(spec.timeout_seconds):
                while True:
                    if steps >= spec.max_steps:
                        status = "max_steps"
                        answer = (f"agent {name} stopped after {spec.max_steps} steps (max_steps) without a final "
                                  "answer")
                        break
                    steps += 1
                    await self._progress(ctx, steps, spec, f"step {steps}: asking the model")
                    tried = len(usage["model_calls"])
                    turn = await self._model(self.agents[name], messages, tools, ctx, usage)
                    calls = usage["model_calls"][tried:]
                    spent += turn.usage.get("completion_tokens", 0)
                    if not turn.tool_calls:
                        answer = turn.text
                        messages.append({"role": "assistant", "content": turn.text, "model_calls": calls})
                        break
                    messages.append({"role": "assistant", "content": turn.text or None, "tool_calls": [
                        {"id": c.id, "type": "function",
                         "function": {"name": c.name, "arguments": c.raw_arguments or json.dumps(c.arguments)}}
                        for c in turn.tool_calls], "model_calls": calls})
                    self._save(conversation_id, name, ctx, messages, usage, "running")
                    for call in turn.tool_calls:
                        await self._progress(ctx, steps, spec, f"step {steps}: calling {call.name}")
                        text, failed = await self._use_tool(call, offered, ctx, public, cache)
                        messages.append({"role": "tool", "tool_call_id": call.id, "content": text,
                                         **({"is_error": True} if failed else {})})
                        self._save(conversation_id, name, ctx, messages, usage, "running")
                    if spent > spec.max_tokens:
                        status = "max_tokens"
                        answer = f"agent {name} stopped: {spent} output tokens used, over its budget of {spec.max_tokens}"
                        break
        except TimeoutError:
            status, answer = "timeout", f"agent {name} stopped after {spec.timeout_seconds:g} s (timeout_seconds)"
        except BackendError as exc:
            status, answer = "model_error", f"agent {name}: no model could answer: {exc}"
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                messages.append({"role": "notice", "status": "cancelled", "content": f"agent {name}: the call was "
                                 "cancelled"})
                self._save(conversation_id, name, ctx, messages, usage, "cancelled")
            raise
        if status != "ok":
            notice: dict[str, Any] = {"role": "notice", "status": status, "content": answer}
            if status == "model_error":
                notice["model_calls"] = usage["model_calls"][tried:]
            messages.append(notice)
        self._save(conversation_id, name, ctx, messages, usage, status)
        structured = {"answer": answer, "conversation_id": conversation_id, "agent": name, "status": status,
                      "steps": steps, "usage": {k: v for k, v in usage.items() if k != "model_calls"},
                      "models": usage["model_calls"]}
        return types.CallToolResult(content=[_text(answer or "(no answer)")], structured_content=structured,
                                    is_error=status != "ok")

    async def _progress(self, ctx: CallContext | None, step: int, spec: AgentSpec, message: str) -> None:
        if ctx is not None:
            await ctx.report_progress(step, spec.max_steps, message)

    async def _knowledge(self, spec: AgentSpec, message: str, ctx: CallContext, public: str) -> str:
        result = await self.host.call_tool("rag__search", {"query": message, "namespaces": spec.knowledge, "k": 5},
                                           caller=ctx, via=public, client=f"junction:agent/{public}")
        if result.is_error:
            log.warning("agents: knowledge search failed: %s", result.content[0].text if result.content else "")
            return ""
        hits = (result.structured_content or {}).get("results") or []
        if not hits:
            return ""
        passages = "\n\n".join(f"[{h.get('uri')}] {h.get('title')}: {h.get('text')}" for h in hits)
        return f"\n\nPassages from the knowledge base that may help (cite them by their [uri]):\n{passages[:12000]}"

    async def _use_tool(self, call: Any, offered: set[str], ctx: CallContext, public: str,
                        cache: dict[str, Any]) -> tuple[str, bool]:
        if call.id in cache:  # an input round re-ran this handler: the tool already ran
            return cache[call.id]["text"], cache[call.id]["failed"]
        if call.raw_arguments:
            text, failed = f"the arguments for {call.name} are not a JSON object: {call.raw_arguments[:200]}", True
        elif call.name not in offered:
            text, failed = (f"{call.name!r} is not one of the tools you may use here "
                            f"({', '.join(sorted(offered)) or 'none'})"), True
        else:
            result = await self.host.call_tool(call.name, call.arguments, caller=ctx, via=public,
                                               client=f"junction:agent/{public}")
            parts = [c.text for c in result.content if isinstance(c, types.TextContent)]
            if result.structured_content is not None and not parts:
                parts.append(json.dumps(result.structured_content, ensure_ascii=False, default=str))
            text, failed = "\n".join(parts)[:MAX_TOOL_TEXT] or "(no text)", bool(result.is_error)
        cache[call.id] = {"text": text, "failed": failed}
        return text, failed

    async def _model(self, agent: Agent, messages: list[dict[str, Any]], tools: list[types.Tool],
                     ctx: CallContext, usage: dict[str, Any]) -> Turn:
        errors = []
        wire = [{k: v for k, v in m.items() if k not in NOTES} for m in messages]
        for model in agent.spec.models:
            try:
                if model.backend == "sampling":
                    turn = await complete_sampling(model, messages, tools, ctx)
                else:
                    # the admin's endpoints: the config's agents', and the configured models by name (checked against
                    # the config, not taken from the spec); any other is one an agent made with a tool names itself
                    configured = self.config.models.get(model.name) if model.name else None
                    trusted = agent.source == "config" or (configured is not None
                                                           and configured.base_url == model.base_url)
                    turn = await complete_openai(model, wire, tools, self.host.outbound, trusted=trusted)
            except BackendError as exc:
                errors.append(str(exc))
                usage["model_calls"].append({"model": model.label, "ok": False, "error": str(exc)})
                log.warning("agents: %s", exc)
                continue
            prompt, completion = turn.usage.get("prompt_tokens", 0), turn.usage.get("completion_tokens", 0)
            usage["prompt_tokens"] += prompt
            usage["completion_tokens"] += completion
            cost = prompt * model.price_input_per_million / 1e6 + completion * model.price_output_per_million / 1e6
            usage["cost"] = round(usage.get("cost", 0.0) + cost, 8)
            counted = model.name or ("(client)" if model.backend == "sampling" else "(own)")
            for direction, count in (("input", prompt), ("output", completion)):
                self._tokens[(counted, direction)] = self._tokens.get((counted, direction), 0) + count
            self._cost[counted] = self._cost.get(counted, 0.0) + cost
            usage["model_calls"].append({"model": model.label, "ok": True, "seconds": round(turn.seconds, 4),
                                         "prompt_tokens": prompt, "completion_tokens": completion})
            return turn
        raise BackendError("; ".join(errors))

    def _save(self, conversation_id: str, name: str, ctx: CallContext, messages: list[dict[str, Any]],
              usage: dict[str, Any], status: str) -> None:
        assert self.store is not None
        now = time.time()
        kept = {k: v for k, v in usage.items() if k != "model_calls"}
        self.store.execute("INSERT INTO conversations (id, agent, owner, created, updated, status, messages, usage) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET updated = excluded.updated, "
                       "status = excluded.status, messages = excluded.messages, usage = excluded.usage",
                       (conversation_id, name, self._owner(ctx), now, now, status, _stored_json(messages),
                        json.dumps(kept)))
        self.host.resource_updated(f"agent://{name}/conversations/{conversation_id}")

    # management --------------------------------------------------------------------------------------
    async def _tool_list(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        """The config's agents and the caller's own; an admin asking with `all` sees everyone's."""
        who = self._who(ctx)
        every = bool(args.get("all"))
        if every and not who.is_admin:
            raise AgentError("all: only an admin may list the agents of every user")
        rows = [self._describe(n, a) for n, a in sorted(self.agents.items())
                if a.owner is None or a.owner == who.owner or every]
        text = "\n".join(f"{r['name']}: {r['description']} [{', '.join(r['models'])}]" for r in rows)
        return types.CallToolResult(content=[_text(text or "no agents yet (see presets)")],
                                    structured_content={"agents": rows})

    async def _tool_presets(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        """The presets, and the models an agent made with a tool may run on: the admin's by name (with the model
        ids it may pick there), the caller's own (sampling), and whether endpoints of its own are allowed."""
        rows = [{"preset": k, **v} for k, v in sorted(PRESETS.items())]
        models = [{"use": name, "model": spec.model, "allowed_models": spec.allowed_models}
                  for name, spec in sorted(self.config.models.items())]
        text = "\n".join(f"{r['preset']}: {r['description']}" for r in rows)
        text += "\nmodels: " + (", ".join(m["use"] for m in models) or "none configured") + ", or the caller's own " \
            "(sampling)"
        return types.CallToolResult(content=[_text(text)], structured_content={
            "presets": rows, "models": models, "custom_endpoints": self.config.allow_custom_endpoints})

    def _spec_from(self, args: dict[str, Any], ctx: CallContext, base: dict[str, Any] | None = None) -> AgentSpec:
        raw = {**(base or {}), **{k: v for k, v in args.items() if k != "name"}}
        try:
            spec = msgspec.convert(raw, AgentSpec)
        except msgspec.ValidationError as exc:
            raise AgentError(f"not a valid agent: {exc}") from None
        if "tools" in args:
            self._check_tools(spec.tools, ctx)
        return spec

    def _check_tools(self, tools: list[str], ctx: CallContext) -> None:
        """A tool named outright (no wildcard) that the caller may not use is refused: an agent of theirs could never
        use it either. Patterns are cut down to what the caller may use at every run (`_offered`)."""
        who = self._who(ctx)
        for number, name in enumerate(tools):
            if not WILDCARDS & set(name) and not self.host.allows(who, name):
                raise AgentError(f"tools[{number}]: you may not use the tool {name[:100]!r}, so an agent of yours "
                                 "may not either")

    async def _tool_create(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        name = args.get("name")
        if not isinstance(name, str) or not re.fullmatch(NAME, name) or name in MANAGE:
            raise AgentError(f"name: {name!r} is not a free agent name (a-z, 0-9, _ and -; not {', '.join(MANAGE)})")
        if name in self.agents:
            raise AgentError(f"name: the agent name {name!r} is taken" + (" (use update)" if self._reaches(
                self.agents[name], ctx) and self.agents[name].source == "tool" else ""))
        who = self._who(ctx)
        mine = sum(1 for agent in self.agents.values() if agent.owner == who.owner)
        if not who.is_local and mine >= self.config.max_agents_per_user:
            raise AgentError(f"you have {mine} agents, the most a user may make (max_agents_per_user); delete one "
                             "first")
        return await self._install(name, self._spec_from(args, ctx), ctx, "created", self._owner(ctx))

    async def _tool_update(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        agent = self._agent(args.get("name"), ctx, "update")
        name = args["name"]
        assert self.store is not None
        stored = self.store.rows("SELECT spec FROM agents WHERE name = ?", (name,))
        return await self._install(name, self._spec_from(args, ctx, json.loads(stored[0][0]) if stored else {}),
                                   ctx, "updated", agent.owner)

    async def _install(self, name: str, spec: AgentSpec, ctx: CallContext, verb: str, owner: str | None
                       ) -> types.CallToolResult:
        resolved = self._resolve_made(spec, "agent")
        for number, model in enumerate(resolved.models):
            if model.backend == "openai" and not model.name:  # an endpoint of the caller's own: where may it go?
                try:
                    await self.host.outbound.check(model.base_url)
                except OutboundError as exc:
                    raise AgentError(f"agent.models[{number}].base_url: {exc}") from None
        assert self.store is not None
        now = time.time()
        self.store.execute("INSERT INTO agents (name, spec, owner, created, updated) VALUES (?, ?, ?, ?, ?) "
                       "ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, updated = excluded.updated",
                       (name, msgspec.json.encode(spec).decode(), owner, now, now))
        self.agents[name] = Agent(resolved, "tool", owner, now)
        self.host.catalog_changed()
        return types.CallToolResult(content=[_text(f"agent {name} {verb}: the tool agents__{name}")],
                                    structured_content=self._describe(name, self.agents[name]))

    async def _tool_delete(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        assert self.store is not None
        if "name" not in args and "conversation_id" in args:
            cid = args["conversation_id"]
            owner = self.store.rows("SELECT owner FROM conversations WHERE id = ?", (str(cid),))
            if not isinstance(cid, str) or not owner or owner[0][0] != self._owner(ctx):
                raise AgentError(f"conversation_id: no conversation {str(cid)[:100]!r} of yours")
            self.store.execute("DELETE FROM conversations WHERE id = ?", (cid,))
            return types.CallToolResult(content=[_text(f"conversation {cid} deleted")],
                                        structured_content={"deleted_conversation": cid})
        self._agent(args.get("name"), ctx, "delete")
        name = args["name"]
        assert self.store is not None
        self.store.execute("DELETE FROM agents WHERE name = ?", (name,))
        self.store.execute("DELETE FROM conversations WHERE agent = ?", (name,))
        del self.agents[name]
        self.host.catalog_changed()
        return types.CallToolResult(content=[_text(f"agent {name} deleted")], structured_content={"deleted": name})

    async def forget_user(self, user: str) -> dict[str, int]:
        """`user`'s agents go with them (with every conversation with those), and their conversations with the
        others: a later user of that name would own them."""
        assert self.store is not None
        theirs = [name for name, agent in self.agents.items() if agent.source == "tool" and agent.owner == user]
        for name in theirs:
            self.store.execute("DELETE FROM agents WHERE name = ?", (name,))
            self.store.execute("DELETE FROM conversations WHERE agent = ?", (name,))
            del self.agents[name]
        talks = self.store.execute("DELETE FROM conversations WHERE owner = ?", (user,)).rowcount
        if theirs:
            self.host.catalog_changed()
        return {"agent": len(theirs), "conversation": talks}

    async def _tool_conversations(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        assert self.store is not None
        self._agent(args.get("agent"), ctx, "read")
        limit = args.get("limit", 20)
        rows = self.store.rows("SELECT id, created, updated, status, messages FROM conversations WHERE agent = ? AND "
                              "owner = ? ORDER BY updated DESC LIMIT ?", (args.get("agent"), self._owner(ctx),
                                                                          int(limit) if isinstance(limit, int) else 20))
        out = []
        for cid, created, updated, status, raw in rows:
            first = next((m["content"] for m in json.loads(raw) if m["role"] == "user"), "")
            out.append({"id": cid, "created": created, "updated": updated, "status": status, "first": first[:200],
                        "uri": f"agent://{args.get('agent')}/conversations/{cid}"})
        text = "\n".join(f"{c['id']}: {c['status']}: {c['first']}" for c in out)
        return types.CallToolResult(content=[_text(text or "no conversations")],
                                    structured_content={"conversations": out})

    async def _tool_export(self, args: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        body = self._conversation(str(args.get("conversation_id", "")), ctx)
        return types.CallToolResult(content=[_text(json.dumps(body, indent=2, ensure_ascii=False, default=str))],
                                    structured_content=body)
