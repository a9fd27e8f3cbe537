"""What a job is: a trigger, an action (steps that call catalog tools), and a run policy.

A job as tools and the config write it (JSON / TOML):

    name = "morning-digest"
    trigger = {type = "cron", cron = "0 7 * * 1-5", timezone = "Europe/Berlin"}
    action = {steps = [
      {name = "mail", tool = "mail__search", arguments = {account = "work", unseen = true}},
      {tool = "agents__mail_triage", arguments = {message = "Sort these: {{ steps.mail.text }}"}},
    ]}
    policy = {timeout_seconds = 120, retries = 2, overlap = "skip", misfire_grace_seconds = 600}

`action` may also be one call (`{tool = "...", arguments = {...}}`) or an agent run
(`{agent = "NAME", prompt = "..."}`, which calls the tool `agents__NAME`). In arguments, `{{ path }}`
is replaced by a value from the run: `trigger.*` (what fired it: `trigger.uids` for mail,
`trigger.path` for files, `trigger.body` for webhooks), `steps.N.*` or `steps.NAME.*` (an earlier step's
`text`, `structured` and `is_error`), `job` and `now`. A string that is exactly one placeholder takes the
value as it is (a number stays a number); inside other text it is written out.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import re
from typing import Annotated, Any, Literal

import msgspec

from hub.provider import ToolError

NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"
TRIGGERS = ("cron", "interval", "once", "mail", "file", "webhook", "start")


class JobError(ToolError, ValueError):
    """A job definition or request that cannot be used; the message names the field."""


class Trigger(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    type: Literal["cron", "interval", "once", "mail", "file", "webhook", "start"]
    cron: str = ""
    """cron: five fields (minute hour day month weekday), or six with seconds first."""
    timezone: str = "UTC"
    seconds: Annotated[float, msgspec.Meta(ge=0)] = 0
    """interval: every this many seconds (at least 1)."""
    at: str = ""
    """once: an ISO 8601 time; without an offset it is read in `timezone`."""
    account: str = ""
    folder: str = "INBOX"
    """mail: new messages in this account's folder (a folder the account watches)."""
    root: str = ""
    glob: str = "*"
    """file: a file under this files root whose path matches the glob was added, changed or removed."""
    scheme: Literal["", "standard", "github"] = ""
    """webhook: how senders sign (`tools.automation.webhooks`): `standard` (Standard Webhooks, what new jobs
    get) or `github` (X-Hub-Signature-256, replayable). Jobs stored before there was a choice have none,
    and were signed the GitHub way."""


class Step(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    tool: str
    arguments: dict[str, Any] = {}
    name: str = ""


class Action(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    steps: list[Step] = []
    tool: str = ""
    arguments: dict[str, Any] = {}
    agent: str = ""
    prompt: str = ""

    def normalized(self) -> list[Step]:
        forms = sum(bool(x) for x in (self.steps, self.tool, self.agent))
        if forms != 1:
            raise JobError("action: give exactly one of steps, tool (with arguments) or agent (with prompt)")
        if self.tool:
            return [Step(tool=self.tool, arguments=self.arguments)]
        if self.agent:
            if not re.fullmatch(NAME, self.agent):
                raise JobError(f"action.agent: {self.agent!r} is not an agent name")
            return [Step(tool=f"agents__{self.agent}", arguments={"message": self.prompt})]
        if len(self.steps) > 20:
            raise JobError("action.steps: at most 20 steps")
        return list(self.steps)


class Policy(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=86400)] = 300
    retries: Annotated[int, msgspec.Meta(ge=0, le=10)] = 0
    retry_backoff_seconds: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 5
    """The wait before the first retry; it doubles for each further one."""
    overlap: Literal["skip", "queue", "cancel"] = "skip"
    """When it fires while a run is still going: skip this one, queue it, or cancel the old run."""
    misfire_grace_seconds: Annotated[float, msgspec.Meta(ge=0)] = 60
    """A time-triggered run missed (the hub was down) is still made up if at most this late; else
    it is recorded as missed. Several missed runs of one job are made up once."""


class JobSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    trigger: Trigger
    action: Action
    policy: Policy = msgspec.field(default_factory=Policy)
    description: str = ""
    paused: bool = False


def parse_spec(raw: Any, where: str = "") -> JobSpec:
    try:
        spec = msgspec.convert(raw, JobSpec)
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = re.match(r"^(.*?)(?: - at `\$\.?(.*)`)?$", text, re.S)
        reason, path = (match.group(1), match.group(2)) if match else (text, "")
        path = ".".join(p for p in (where, (path or "").replace("[", ".").replace("]", "")) if p)
        raise JobError(f"{path}: {reason[0].lower() + reason[1:]}" if path else reason) from None
    check(spec, where)
    return spec


def check(spec: JobSpec, where: str = "") -> None:
    prefix = f"{where}." if where else ""
    t = spec.trigger
    if t.type == "cron":
        from croniter import croniter

        if not t.cron or not croniter.is_valid(t.cron):
            raise JobError(f"{prefix}trigger.cron: {t.cron!r} is not a cron expression (e.g. \"*/5 * * * *\")")
    if t.type in ("cron", "once"):
        zone(t.timezone, f"{prefix}trigger.timezone")
    if t.type == "interval" and t.seconds < 1:
        raise JobError(f"{prefix}trigger.seconds: an interval of at least 1 second is needed")
    if t.type == "once":
        once_at(t)
    if t.type == "mail" and not t.account:
        raise JobError(f"{prefix}trigger.account: which mail account to watch")
    if t.type == "file" and not t.root:
        raise JobError(f"{prefix}trigger.root: which files root to watch")
    if t.scheme and t.type != "webhook":
        raise JobError(f"{prefix}trigger.scheme: only webhook triggers are signed")
    steps = spec.action.normalized()
    names = [s.name for s in steps if s.name]
    if len(names) != len(set(names)):
        raise JobError(f"{prefix}action.steps: step names must be unique")
    for number, step in enumerate(steps):
        if not re.fullmatch(r"^[a-zA-Z0-9_-]{1,64}$", step.tool):
            raise JobError(f"{prefix}action.steps[{number}].tool: {step.tool!r} is not a tool name")
        for ref in re.findall(r"\{\{\s*steps\.([A-Za-z0-9_-]+)", json.dumps(step.arguments)):
            earlier = ref.isdigit() and int(ref) < number or ref in [s.name for s in steps[:number] if s.name]
            if not earlier:
                raise JobError(f"{prefix}action.steps[{number}].arguments: {{{{ steps.{ref} }}}} is not an "
                               "earlier step")


def zone(name: str, where: str) -> dt.tzinfo:
    import zoneinfo

    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise JobError(f"{where}: {name!r} is not a time zone (e.g. \"Europe/Berlin\", \"UTC\")") from None


def once_at(trigger: Trigger) -> float:
    try:
        moment = dt.datetime.fromisoformat(trigger.at)
    except ValueError:
        raise JobError(f"trigger.at: {trigger.at!r} is not an ISO 8601 time (e.g. 2026-12-24T18:00:00+01:00)") \
            from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone(trigger.timezone, "trigger.timezone"))
    return moment.timestamp()


def next_fire(trigger: Trigger, after: float) -> float | None:
    """The next time (epoch seconds) a time trigger fires after `after`; None when it never will again."""
    if trigger.type == "interval":
        return after + trigger.seconds
    if trigger.type == "once":
        at = once_at(trigger)
        return at if at > after else None
    if trigger.type == "cron":
        from croniter import croniter

        start = dt.datetime.fromtimestamp(after, zone(trigger.timezone, "trigger.timezone"))
        return float(croniter(trigger.cron, start).get_next(float))
    return None


def file_matches(trigger: Trigger, root: str, path: str) -> bool:
    return trigger.type == "file" and trigger.root == root and (
        fnmatch.fnmatchcase(path, trigger.glob) or fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], trigger.glob))


# templates -----------------------------------------------------------------------------------------
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}")


def lookup(context: dict[str, Any], path: str) -> Any:
    value: Any = context
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            raise JobError(f"{{{{ {path} }}}}: nothing at '{part}'")
    return value


def render(value: Any, context: dict[str, Any]) -> Any:
    """Fill `{{ path }}` placeholders in strings, recursively through lists and objects."""
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value.strip())
        if whole:
            return lookup(context, whole.group(1))

        def text(match: re.Match[str]) -> str:
            found = lookup(context, match.group(1))
            return found if isinstance(found, str) else json.dumps(found, ensure_ascii=False)
        return _PLACEHOLDER.sub(text, value)
    if isinstance(value, list):
        return [render(v, context) for v in value]
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    return value
