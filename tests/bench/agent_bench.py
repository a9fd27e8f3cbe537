"""Benchmark the agent loop: what each step costs besides the model's own time.

Starts the scripted OpenAI-compatible server (tests/fixtures/fake_llm.py, in this process) and the hub
with the echo provider of call_bench and one agent allowed `echo__echo`. Each measured call runs an
agent for STEPS steps (the model asks for `echo__echo` each time, then answers), and the model server
records how long it spent on each request. Per step:

    overhead = (wall time of the agents__bench call - the time the model server spent on its requests) / steps

where the model server's time runs from each request's arrival to its last streamed byte. The rest is
the loop itself, building each request (the whole conversation so far, as JSON), HTTP, parsing the
stream, the tool call through the hub (policy, audit), the conversation store, and the client's MCP
call around it all. Baseline in the same run: a plain `echo__echo` call from the
client through the hub (what one tool call costs a client). Target: under 5 ms per step.

Prints ONE JSON line.

    .venv/bin/python tests/bench/agent_bench.py             # 20 calls of 20 steps
    .venv/bin/python tests/bench/agent_bench.py --quick     # 3 calls of 5 steps
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fixtures.fake_llm import FakeLLM  # noqa: E402
from tests.helpers import serve_hub, set_secret  # noqa: E402


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def run(calls: int, steps: int) -> dict[str, Any]:
    from mcp import Client

    async with FakeLLM() as llm:
        work = Path(tempfile.mkdtemp(prefix="junction-agent-bench-"))
        config = f"""
[providers.echo]
module = "tests.bench.echo_provider:EchoProvider"
[providers.agents.agents.bench]
instructions = "Echo, then answer."
tools = ["echo__echo"]
max_steps = {steps + 1}
models = [{{backend = "openai", base_url = "{llm.url}", model = "bench", api_key = "${{secret:llm}}"}}]
"""
        (work / "junction.toml").write_text(config)
        set_secret(work, "llm", llm.api_key)
        per_step: list[float] = []
        model_share: list[float] = []
        direct: list[float] = []
        errors = 0
        try:
            with serve_hub(work, config) as hub:
                async with Client(hub.url, mode="2026-07-28", read_timeout_seconds=120) as client:
                    for number in range(calls + 1):  # the first call warms up
                        llm.script("bench", [{"tool_calls": [{"name": "echo__echo", "arguments": {"text": f"s{i}"}}]}
                                             for i in range(steps)] + [{"content": "done"}])
                        served = len(llm.server_seconds)
                        started = time.perf_counter()
                        result = await client.call_tool("agents__bench", {"message": "go"})
                        wall = time.perf_counter() - started
                        server_time = sum(llm.server_seconds[served:])
                        body = result.structured_content or {}
                        if result.is_error or body.get("steps") != steps + 1:
                            errors += 1
                            log(f"call {number}: {result.content[0].text[:300]}")
                            continue
                        if number:
                            per_step.append((wall - server_time) / (steps + 1))
                            model_share.append(server_time / wall)
                        for _ in range(5):
                            t0 = time.perf_counter()
                            await client.call_tool("echo__echo", {"text": "x"})
                            direct.append(time.perf_counter() - t0)
        finally:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    p50 = statistics.median(per_step) * 1000 if per_step else None
    return {
        "bench": "agent_loop", "ok": errors == 0 and p50 is not None, "errors": errors, "calls": calls,
        "steps_per_call": steps + 1,
        "overhead_per_step_ms": {"p50": round(p50, 3) if p50 is not None else None,
                                 "max": round(max(per_step) * 1000, 3) if per_step else None},
        "target_ms": 5,
        "baseline_direct_tool_call_ms": {"p50": round(statistics.median(direct) * 1000, 3) if direct else None},
        "model_share_of_wall": round(statistics.median(model_share), 3) if model_share else None,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "loadavg": [round(x, 2) for x in os.getloadavg()]},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.calls, args.steps = 3, 5
    report = asyncio.run(run(args.calls, args.steps))
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
