"""Jobs (`/jobs`): the viewer's jobs (an administrator's: every user's) with their trigger, next and last run, paused
or not, and a form that makes one (a trigger and one tool call with JSON arguments); `/jobs/NAME`: the job in full
with its runs (status, result or error, when), pause, resume, run now (the new run is followed until it ends) and
delete. Everything goes through the automation provider's tools (`automation__*`), called as the viewer: whose job
is whose is the provider's to say, never this page's.
Must not: read the jobs' store, or keep anything of a job (a webhook's secret is shown once, in the answer to the
form that made it)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hub.console.app import NavItem, Refused, Viewer, result_text

if TYPE_CHECKING:
    from hub.console.app import Console

NAV = [NavItem("/jobs", "Jobs")]
TRIGGERS = ("cron", "interval", "once", "webhook", "start")
"""The triggers the form makes (a mail or file trigger names an account or a root: `automation__create` over MCP)."""


def routes(console: Console) -> list[BaseRoute]:
    def tool(local: str) -> str:
        name = console.tool_name("automation", local)
        if name is None:
            raise Refused("Jobs are not running on this hub (the automation provider is off: "
                          "[providers.automation] in the config).", 503)
        return name

    def htmx(request: Request) -> bool:
        return bool(request.headers.get("hx-request"))

    async def listing(request: Request, viewer: Viewer, **extra: Any) -> Response:
        found = await console.call_json(viewer, tool("list"), {"all": True} if viewer.is_admin else {})
        template = "_jobs_list.html" if htmx(request) else "jobs.html"
        tools = sorted(t.name for t in console.visible_tools(viewer))
        values = {"notice": "", "failed": False, "created": None, **extra}
        return console.render(request, viewer, template, title="Jobs", jobs=found.get("jobs", []), tools=tools,
                              triggers=TRIGGERS, **values)

    async def jobs(request: Request, viewer: Viewer) -> Response:
        return await listing(request, viewer)

    async def create(request: Request, viewer: Viewer) -> Response:
        form = await request.form()
        name = tool("create")
        try:
            arguments = job_from(form)
        except ValueError as exc:
            if not htmx(request):
                raise Refused(str(exc), 400) from None
            return await listing(request, viewer, notice=str(exc), failed=True)
        result = await console.call(viewer, name, arguments)
        if result.is_error:
            if not htmx(request):
                raise Refused(result_text(result), 400)
            return await listing(request, viewer, notice=result_text(result), failed=True)
        created = result.structured_content or {}
        if not htmx(request) and "webhook" not in created:
            return RedirectResponse(f"/jobs/{quote(arguments['name'], safe='')}", status_code=303)
        # a webhook's secret is in this answer only: it is shown here, never kept
        return await listing(request, viewer, notice=f"Job {arguments['name']} created.", created=created)

    async def job(request: Request, viewer: Viewer, notice: str = "", failed: bool = False) -> Response:
        name = request.path_params["name"]
        found = await console.call_json(viewer, tool("get"), {"name": name})
        runs = await console.call_json(viewer, tool("runs"), {"name": name, "limit": 20})
        template = "_job_state.html" if htmx(request) else "job.html"
        return console.render(request, viewer, template, title=f"Job {name}", job=found,
                              runs=runs.get("runs", []), notice=notice, failed=failed,
                              spec=json.dumps(found.get("spec"), indent=2, ensure_ascii=False))

    async def job_page(request: Request, viewer: Viewer) -> Response:
        return await job(request, viewer)

    async def runs(request: Request, viewer: Viewer, notice: str = "", failed: bool = False) -> Response:
        name = request.path_params["name"]
        found = await console.call_json(viewer, tool("runs"), {"name": name, "limit": 20})
        return console.render(request, viewer, "_job_runs.html", job={"name": name}, runs=found.get("runs", []),
                              notice=notice, failed=failed)

    async def runs_page(request: Request, viewer: Viewer) -> Response:
        return await runs(request, viewer)

    def action(local: str, verb: str) -> Any:
        async def act(request: Request, viewer: Viewer) -> Response:
            name = request.path_params["name"]
            result = await console.call(viewer, tool(local), {"name": name})
            text = result_text(result)
            if not htmx(request):
                if result.is_error and not (local == "run_now" and (result.structured_content or {}).get("state")):
                    raise Refused(text, 400)
                return RedirectResponse("/jobs" if local == "delete" else f"/jobs/{quote(name, safe='')}",
                                        status_code=303)
            if local == "run_now":
                return await runs(request, viewer, text, result.is_error)
            if result.is_error:
                return console.alert(text)
            if local == "delete":
                response = Response(status_code=204)
                response.headers["HX-Redirect"] = "/jobs"
                return response
            return await job(request, viewer, f"Job {name} {verb}.")

        return act

    page = console.page
    return [Route("/jobs", page(jobs), methods=["GET"]),
            Route("/jobs", page(create), methods=["POST"]),
            Route("/jobs/{name}", page(job_page), methods=["GET"]),
            Route("/jobs/{name}/runs", page(runs_page), methods=["GET"]),
            Route("/jobs/{name}/pause", page(action("pause", "paused")), methods=["POST"]),
            Route("/jobs/{name}/resume", page(action("resume", "resumed")), methods=["POST"]),
            Route("/jobs/{name}/run", page(action("run_now", "started")), methods=["POST"]),
            Route("/jobs/{name}/delete", page(action("delete", "deleted")), methods=["POST"])]


def job_from(form: FormData) -> dict[str, Any]:
    """`automation__create`'s arguments from the form: a ValueError names the field that is wrong. What a trigger
    or a tool name may be is the tool's to check (its refusals name the field too)."""
    def field(key: str) -> str:
        return str(form.get(key, "")).strip()

    kind = field("trigger")
    if kind not in TRIGGERS:
        raise ValueError(f"Trigger: choose one of {', '.join(TRIGGERS)}")
    trigger: dict[str, Any] = {"type": kind}
    if kind == "cron":
        trigger.update(cron=field("cron"), timezone=field("timezone") or "UTC")
    elif kind == "interval":
        try:
            trigger["seconds"] = float(field("seconds"))
        except ValueError:
            raise ValueError(f"Every (seconds): {field('seconds')[:40]!r} is not a number") from None
    elif kind == "once":
        trigger.update(at=field("at"), timezone=field("timezone") or "UTC")
    raw = field("arguments") or "{}"
    try:
        arguments = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"Arguments (JSON): not JSON ({exc})") from None
    if not isinstance(arguments, dict):
        raise ValueError('Arguments (JSON): an object is needed, like {"name": "value"}')
    job: dict[str, Any] = {"name": field("name"), "trigger": trigger,
                           "action": {"tool": field("tool"), "arguments": arguments}}
    if field("description"):
        job["description"] = field("description")
    return job
