"""Agents (`/agents`): the agents the viewer may use (the hub's own from the config, and their own; admins may list
everyone's), each with its description, models, tools and knowledge; a form to make one from a preset or from
scratch; `/agents/NAME` to see one and, for an agent made with a tool that the viewer may change, edit or delete it.
Everything comes from and goes through `agents__list`, `agents__presets`, `agents__create`, `agents__update` and
`agents__delete`, called as the viewer: the provider decides who reaches what (the page never does)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hub.console.app import NavItem, Refused, Viewer, result_text

if TYPE_CHECKING:
    from hub.console.app import Console

NAV = [NavItem("/agents", "Agents")]
MANAGE = ("list", "presets", "create", "update", "delete", "conversations", "export")


def agents_tool(console: Console, local: str) -> str:
    name = console.tool_name("agents", local)
    if name is None:
        raise Refused("The agents provider is not running on this hub ([providers.agents] in the config).", 503)
    return name


def routes(console: Console) -> list[BaseRoute]:
    def offered_tools(viewer: Viewer) -> list[str]:
        """The tools the viewer may use, which an agent of theirs may be given (not the agents' management tools)."""
        own = {console.tool_name("agents", m) for m in MANAGE}
        return sorted(t.name for t in console.visible_tools(viewer) if t.name not in own)

    async def form_values(viewer: Viewer, agent: dict[str, Any] | None, preset: str) -> dict[str, Any]:
        on_offer = await console.call_json(viewer, agents_tool(console, "presets"), {})
        presets = {p["preset"]: p for p in on_offer.get("presets", [])}
        tools = offered_tools(viewer)
        if agent is not None:
            chosen = list(agent.get("tools") or [])
            given = (agent.get("model_specs") or [{}])[0]
            values = {"name": agent["name"], "description": agent.get("description") or "",
                      "instructions": agent.get("instructions") or "",
                      "max_steps": agent.get("max_steps", 8), "model_use": given.get("use") or
                      ("sampling" if given.get("backend") == "sampling" else ""), "model_id": given.get("model", "")}
        else:
            base = presets.get(preset, {})
            chosen = list(base.get("tools") or [])
            values = {"name": "", "description": base.get("description", ""), "instructions":
                      base.get("instructions", ""), "max_steps": base.get("max_steps", 8),
                      "model_use": "", "model_id": ""}
        values["tools_checked"] = [t for t in chosen if t in tools]
        values["patterns"] = ", ".join(t for t in chosen if t not in tools)
        chosen_spaces = list(agent.get("knowledge") or []) if agent is not None else []
        values["knowledge_checked"] = chosen_spaces
        return {"presets": list(presets.values()), "preset": preset if preset in presets else "",
                "models": on_offer.get("models", []), "tools": tools, "values": values,
                "namespaces": await namespaces(viewer, chosen_spaces)}

    async def namespaces(viewer: Viewer, chosen: list[str]) -> list[str]:
        """The knowledge namespaces the viewer may search (`rag__list_namespaces` as them), and those the agent
        already has (an admin editing another user's agent keeps what it had)."""
        name = console.tool_name("rag", "list_namespaces")
        found = await console.call_json(viewer, name, {}) if name is not None else {}
        return sorted({n["namespace"] for n in found.get("namespaces", [])} | set(chosen))

    async def listing(request: Request, viewer: Viewer) -> Response:
        every = viewer.is_admin and request.query_params.get("all") == "1"
        found = await console.call_json(viewer, agents_tool(console, "list"), {"all": True} if every else {})
        preset = request.query_params.get("preset", "")[:60]
        form = await form_values(viewer, None, preset)
        if request.headers.get("hx-request") and request.query_params.get("form"):
            return console.render(request, viewer, "_agent_form.html", creating=True, action="/agents", **form)
        return console.render(request, viewer, "agents.html", title="Agents", agents=found.get("agents", []),
                              every=every, creating=True, action="/agents", **form)

    async def create(request: Request, viewer: Viewer) -> Response:
        form = await request.form()
        arguments = spec_from(form)
        arguments["name"] = str(form.get("name", "")).strip()[:100]
        if form.get("preset"):
            arguments["preset"] = str(form.get("preset"))[:60]
        result = await console.call(viewer, agents_tool(console, "create"), arguments)
        if result.is_error:
            raise Refused(_text(result), 400)
        return RedirectResponse(f"/agents/{arguments['name']}", status_code=303)

    async def find(viewer: Viewer, name: str) -> dict[str, Any]:
        found = await console.call_json(viewer, agents_tool(console, "list"), {"all": True} if viewer.is_admin
                                        else {})
        for agent in found.get("agents", []):
            if agent["name"] == name:
                return dict(agent)
        raise Refused(f"No agent named {name[:100]!r} that you may use.", 404)

    async def agent(request: Request, viewer: Viewer) -> Response:
        found = await find(viewer, request.path_params["name"])
        form = await form_values(viewer, found, "")
        return console.render(request, viewer, "agent.html", title=found["name"], agent=found, creating=False,
                              action=f"/agents/{found['name']}", notice=request.query_params.get("saved", ""), **form)

    async def update(request: Request, viewer: Viewer) -> Response:
        name = request.path_params["name"]
        form = await request.form()
        result = await console.call(viewer, agents_tool(console, "update"), {"name": name, **spec_from(form)})
        if result.is_error:
            raise Refused(_text(result), 400)
        return RedirectResponse(f"/agents/{name}?saved=1", status_code=303)

    async def delete(request: Request, viewer: Viewer) -> Response:
        result = await console.call(viewer, agents_tool(console, "delete"), {"name": request.path_params["name"]})
        if result.is_error:
            raise Refused(_text(result), 400)
        return RedirectResponse("/agents", status_code=303)

    return [Route("/agents", console.page(listing), methods=["GET"]),
            Route("/agents", console.page(create), methods=["POST"]),
            Route("/agents/{name}", console.page(agent), methods=["GET"]),
            Route("/agents/{name}", console.page(update), methods=["POST"]),
            Route("/agents/{name}/delete", console.page(delete), methods=["POST"])]


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]


def _text(result: Any) -> str:
    return result_text(result) or "the agents provider refused"


def spec_from(form: FormData) -> dict[str, Any]:
    """What the agent form says, as `agents__create`/`agents__update` take it."""
    tools = [str(t)[:200] for t in form.getlist("tools")][:500] + _split(str(form.get("patterns", ""))[:5000])
    spec: dict[str, Any] = {"description": str(form.get("description", "")).strip()[:2000],
                            "instructions": str(form.get("instructions", "")).strip()[:100_000],
                            "tools": tools, "knowledge": [str(n)[:200] for n in form.getlist("knowledge")][:100]}
    use, model = str(form.get("model_use", "")).strip()[:100], str(form.get("model_id", "")).strip()[:200]
    if use == "sampling":
        spec["models"] = [{"backend": "sampling"}]
    elif use:
        spec["models"] = [{"use": use, **({"model": model} if model else {})}]
    steps = str(form.get("max_steps", "")).strip()
    if steps:
        try:
            spec["max_steps"] = int(steps)
        except ValueError:
            raise Refused(f"Steps at most: {steps[:20]!r} is not a whole number.", 400) from None
    return spec
