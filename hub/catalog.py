"""One catalog of public names across every provider.

Owns: turning each provider's local tools/prompts into public names
(`PREFIX__name`, matching `^[a-zA-Z0-9_-]{1,64}$`), finding which provider
answers a resource URI (each provider in its `ProviderSlot`), and reporting collisions and invalid names instead of
silently shadowing. The first provider in config order keeps a contested name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types
from mcp.shared.uri_template import InvalidUriTemplate, UriTemplate

from hub.provider import Provider, ProviderState

PUBLIC_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
SEPARATOR = "__"
OWNER_META = "dev.junction/owner"


@dataclass(eq=False)
class ProviderSlot:
    """A configured provider and what the hub knows about it."""

    name: str
    prefix: str
    kind: str = "provider"
    """`provider` ([providers.NAME]) or `connector` ([connectors.NAME])."""
    provider: Provider | None = None
    state: ProviderState = ProviderState.STARTING
    error: str | None = None
    tools: Sequence[types.Tool] = ()
    prompts: Sequence[types.Prompt] = ()
    resources: Sequence[types.Resource] = ()
    templates: Sequence[types.ResourceTemplate] = ()
    started_at: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    """Provider-reported facts shown in `hub__status` (e.g. an upstream's restarts and latency)."""

    @property
    def listed(self) -> bool:
        # A provider that went down after it was up keeps its catalog: callers then get its
        # "down" error, which says more than "unknown tool", and clients see no churn.
        if self.provider is None:
            return False
        return self.state is ProviderState.UP or (self.state is ProviderState.DOWN and self.started_at is not None)


def public_name(prefix: str, local: str) -> str:
    return f"{prefix}{SEPARATOR}{local}" if prefix else local


@dataclass(slots=True)
class Entry:
    slot: ProviderSlot
    local: str
    owner: str | None = None
    """The user who created it at run time (`_meta["dev.junction/owner"]`, hub providers only)."""


def owner_of(slot: ProviderSlot, item: types.Tool | types.Prompt | types.Resource) -> str | None:
    """The owner a hub provider published an item with; upstream servers cannot claim one."""
    if slot.kind != "provider" or not item.meta:
        return None
    owner = item.meta.get(OWNER_META)
    return owner if isinstance(owner, str) and owner else None


@dataclass(slots=True)
class TemplateEntry:
    slot: ProviderSlot
    template: UriTemplate | None
    raw: str


@dataclass
class Catalog:
    """An immutable snapshot; the router swaps in a new one when a provider changes."""

    tools: dict[str, Entry] = field(default_factory=dict)
    tool_list: list[types.Tool] = field(default_factory=list)
    input_schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    prompts: dict[str, Entry] = field(default_factory=dict)
    prompt_list: list[types.Prompt] = field(default_factory=list)
    resources: dict[str, Entry] = field(default_factory=dict)
    resource_list: list[types.Resource] = field(default_factory=list)
    templates: list[TemplateEntry] = field(default_factory=list)
    template_list: list[types.ResourceTemplate] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    owned: bool = False
    """Whether any item has an owner (lists then differ per user, not only per scope set)."""

    @classmethod
    def build(cls, slots: Sequence[ProviderSlot]) -> Catalog:
        catalog = cls()
        for slot in slots:
            if not slot.listed:
                continue
            for tool in slot.tools:
                name = catalog._claim(catalog.tools, slot, "tool", tool.name, owner_of(slot, tool))
                if name is not None:
                    catalog.tool_list.append(tool if name == tool.name else tool.model_copy(update={"name": name}))
                    catalog.input_schemas[name] = tool.input_schema
            for prompt in slot.prompts:
                name = catalog._claim(catalog.prompts, slot, "prompt", prompt.name, owner_of(slot, prompt))
                if name is not None:
                    catalog.prompt_list.append(
                        prompt if name == prompt.name else prompt.model_copy(update={"name": name})
                    )
            for resource in slot.resources:
                uri = str(resource.uri)
                holder = catalog.resources.get(uri)
                if holder is not None:
                    catalog.problems.append(
                        f"resource {uri} of provider '{slot.name}' is already provided by '{holder.slot.name}'; ignored"
                    )
                    continue
                catalog.resources[uri] = Entry(slot, uri, owner_of(slot, resource))
                catalog.owned = catalog.owned or catalog.resources[uri].owner is not None
                catalog.resource_list.append(resource)
            for template in slot.templates:
                raw = str(template.uri_template)
                try:
                    parsed: UriTemplate | None = UriTemplate.parse(raw)
                except InvalidUriTemplate as exc:
                    catalog.problems.append(f"resource template {raw!r} of provider '{slot.name}' is invalid: {exc}")
                    parsed = None
                catalog.templates.append(TemplateEntry(slot, parsed, raw))
                catalog.template_list.append(template)
        return catalog

    def _claim(self, table: dict[str, Entry], slot: ProviderSlot, kind: str, local: str,
               owner: str | None = None) -> str | None:
        name = public_name(slot.prefix, local)
        if not PUBLIC_NAME.match(name):
            self.problems.append(
                f"{kind} '{local}' of provider '{slot.name}' would be published as '{name}', which is not a valid "
                f"name (^[a-zA-Z0-9_-]{{1,64}}$); ignored"
            )
            return None
        holder = table.get(name)
        if holder is not None:
            self.problems.append(
                f"{kind} name '{name}' collides: provider '{slot.name}' and provider '{holder.slot.name}' both offer "
                f"it; '{holder.slot.name}' keeps it (give one of them another prefix)"
            )
            return None
        table[name] = Entry(slot, local, owner)
        self.owned = self.owned or owner is not None
        return name

    def resource_owner(self, uri: str) -> ProviderSlot | None:
        entry = self.resources.get(uri)
        if entry is not None:
            return entry.slot
        for template in self.templates:
            if template.template is not None and template.template.match(uri) is not None:
                return template.slot
        return None

    def template_owner(self, uri_template: str) -> ProviderSlot | None:
        for template in self.templates:
            if template.raw == uri_template:
                return template.slot
        return None
