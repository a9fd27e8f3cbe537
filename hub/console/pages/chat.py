"""Chat (`/chat`, `/chat/NAME`, `/chat/NAME/ID`): talk to an agent the viewer may use, with their conversations with
it, each answer shown with the steps it took (model calls, tool calls with their arguments and results, errors).

A message sent with htmx starts the agent's call in the background and the page polls `/chat/NAME/ID/steps` every
second while the conversation is `running` (the provider stores it after every step); without JavaScript the POST
waits for the answer and redirects to the conversation. Every read and run is a tool call as the viewer
(`agents__NAME`, `agents__list`, `agents__conversations`, `agents__export`, `agents__delete`): the provider keeps
each user to their own conversations. Must not: read the agents' store, or keep a run beyond the call it is."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import anyio
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hub.console.app import NavItem, Refused, Viewer, result_text
from hub.console.pages.agents import agents_tool

if TYPE_CHECKING:
    from hub.console.app import Console

NAV = [NavItem("/chat", "Chat")]
MAX_RUNS_PER_VIEWER = 4
"""Agent calls one viewer may have going from the console at once."""
MAX_MESSAGE = 100_000


def routes(console: Console) -> list[BaseRoute]:
    runs: dict[str, set[asyncio.Task[Any]]] = {}
    """The console's background agent calls, by viewer (held so they run to their end)."""

    async def agents_of(viewer: Viewer) -> list[dict[str, Any]]:
        found = await console.call_json(viewer, agents_tool(console, "list"), {})
        return list(found.get("agents", []))

    async def conversations(viewer: Viewer, agent: str) -> list[dict[str, Any]]:
        found = await console.call_json(viewer, agents_tool(console, "conversations"), {"agent": agent, "limit": 50})
        return list(found.get("conversations", []))

    async def conversation(viewer: Viewer, agent: str, cid: str) -> dict[str, Any]:
        result = await console.call(viewer, agents_tool(console, "export"), {"conversation_id": cid})
        body = result.structured_content if not result.is_error else None
        if not isinstance(body, dict) or body.get("agent") != agent:
            raise Refused(f"No conversation {cid[:60]!r} of yours with {agent[:60]!r}.", 404)
        return body

    def tool_of(agent: str) -> str:
        name = console.tool_name("agents", agent)
        if name is None:
            raise Refused("The agents provider is not running on this hub ([providers.agents] in the config).", 503)
        return name

    async def page(request: Request, viewer: Viewer) -> Response:
        agents = await agents_of(viewer)
        name = request.path_params.get("name")
        cid = request.path_params.get("cid")
        values: dict[str, Any] = {"agents": agents, "agent": None, "conversations": [], "conversation": None,
                                  "exchanges": []}
        if name is not None:
            if not any(a["name"] == name for a in agents):
                raise Refused(f"No agent named {name[:100]!r} that you may use.", 404)
            values["agent"] = next(a for a in agents if a["name"] == name)
            values["conversations"] = await conversations(viewer, name)
            if cid is not None:
                values["conversation"] = await conversation(viewer, name, cid)
                values["exchanges"] = exchanges(values["conversation"]["messages"])
        return console.render(request, viewer, "chat.html", title=f"Chat with {name}" if name else "Chat",
                              cid=cid, **values)

    async def steps(request: Request, viewer: Viewer) -> Response:
        name, cid = request.path_params["name"], request.path_params["cid"]
        body = await conversation(viewer, name, cid)
        found = {"name": name}
        return console.render(request, viewer, "_chat_conversation.html", agent=found, cid=cid, conversation=body,
                              exchanges=exchanges(body["messages"]), conversations=await conversations(viewer, name),
                              oob=body["status"] != "running")

    async def send(request: Request, viewer: Viewer) -> Response:
        name = request.path_params["name"]
        form = await request.form()
        message = str(form.get("message", "")).strip()
        if not message:
            raise Refused("Write a message first.", 400)
        if len(message) > MAX_MESSAGE:
            raise Refused(f"The message is too long ({len(message)} characters; at most {MAX_MESSAGE}).", 400)
        arguments: dict[str, Any] = {"message": message}
        cid = str(form.get("conversation_id", "")).strip()[:100]
        if cid:
            arguments["conversation_id"] = cid
        tool = tool_of(name)
        if not request.headers.get("hx-request"):
            result = await console.call(viewer, tool, arguments)
            said = result.structured_content if isinstance(result.structured_content, dict) else {}
            if not said.get("conversation_id"):
                raise Refused(result_text(result) or "The agent did not answer.", 400)
            return RedirectResponse(f"/chat/{name}/{said['conversation_id']}", status_code=303)
        mine = runs.setdefault(viewer.principal.owner, set())
        if len(mine) >= MAX_RUNS_PER_VIEWER:
            return console.alert(f"You have {len(mine)} agent calls going from the console: wait for one to end.")
        named = anyio.Event()
        started: dict[str, str] = {}

        async def progress(value: float, total: float | None, text: str | None) -> None:
            if not started and text and text.startswith("conversation "):
                started["cid"] = text.removeprefix("conversation ")
                named.set()

        async def run() -> Any:
            try:
                return await console.call(viewer, tool, arguments, progress=progress)
            finally:
                named.set()

        task = asyncio.get_running_loop().create_task(run())
        mine.add(task)
        task.add_done_callback(mine.discard)
        await named.wait()
        if "cid" not in started:  # the call ended before it began (refused, or a message it would not take)
            result = await task
            said = result.structured_content if isinstance(result.structured_content, dict) else {}
            if not said.get("conversation_id"):
                return console.alert(result_text(result) or "The agent did not answer.")
            started["cid"] = said["conversation_id"]
        response = await steps_response(request, viewer, name, started["cid"])
        response.headers["HX-Push-Url"] = f"/chat/{name}/{started['cid']}"
        return response

    async def steps_response(request: Request, viewer: Viewer, name: str, cid: str) -> Response:
        request.path_params["cid"] = cid
        return await steps(request, viewer)

    async def forget(request: Request, viewer: Viewer) -> Response:
        name, cid = request.path_params["name"], request.path_params["cid"]
        await conversation(viewer, name, cid)  # one of the viewer's own with this agent
        result = await console.call(viewer, agents_tool(console, "delete"), {"conversation_id": cid})
        if result.is_error:
            raise Refused(result_text(result), 400)
        return RedirectResponse(f"/chat/{name}", status_code=303)

    return [Route("/chat", console.page(page), methods=["GET"]),
            Route("/chat/{name}", console.page(page), methods=["GET"]),
            Route("/chat/{name}", console.page(send), methods=["POST"]),
            Route("/chat/{name}/{cid}", console.page(page), methods=["GET"]),
            Route("/chat/{name}/{cid}/steps", console.page(steps), methods=["GET"]),
            Route("/chat/{name}/{cid}/delete", console.page(forget), methods=["POST"])]


def exchanges(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A stored conversation as the page shows it: each user message with the steps that followed (a model call and
    its text, each tool call with its arguments and result, why a run stopped) and the answer."""
    out: list[dict[str, Any]] = []
    results = {m.get("tool_call_id"): m for m in messages if m.get("role") == "tool"}
    for m in messages:
        role = m.get("role")
        if role == "user":
            out.append({"said": m.get("content") or "", "steps": [], "answer": None})
            continue
        if not out or role not in ("assistant", "notice"):
            continue
        steps = out[-1]["steps"]
        if role == "notice":
            steps.append({"kind": "notice", "text": m.get("content") or "", "status": m.get("status", ""),
                          "models": m.get("model_calls") or []})
            continue
        steps.append({"kind": "model", "models": m.get("model_calls") or [], "text": m.get("content") or "",
                      "final": not m.get("tool_calls")})
        for call in m.get("tool_calls") or []:
            function = call.get("function") or {}
            raw = function.get("arguments") or ""
            try:
                shown = json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
            except ValueError:
                shown = raw
            result = results.get(call.get("id"))
            steps.append({"kind": "tool", "name": function.get("name", ""), "arguments": shown,
                          "result": None if result is None else result.get("content", ""),
                          "failed": bool(result and result.get("is_error"))})
        if not m.get("tool_calls"):
            out[-1]["answer"] = m.get("content") or ""
    return out
