"""A provider run for one command (hub/cli/local.py): started and stopped around the command, its tools run the way
the hub runs them (a tool error is an error result with its message), and nothing it asks of the host reaches what
is not there in a local run (other providers, the catalog)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.cli.local import LOCAL_USER, call_locally, run_locally
from hub.config import load_config
from hub.provider import ChangeFeed
from tests.fixtures.small_providers import ErrorsProvider

pytestmark = pytest.mark.anyio


async def test_a_local_run_answers_as_the_hub_would(tmp_path: Path) -> None:
    (tmp_path / "junction.toml").write_text(f'[store]\ndata_dir = "{tmp_path / "data"}"\n\n'
                                            '[providers.errs]\nmodule = "tests.fixtures.small_providers:ErrorsProvider"'
                                            '\nprefix = "e"\n')
    config = load_config(tmp_path / "junction.toml")
    async with run_locally(config, "errs", ErrorsProvider) as provider:
        host = provider.host
        assert (host.name, host.prefix, host.data_dir) == ("errs", "e", str(tmp_path / "data" / "providers" / "errs"))
        assert await call_locally(provider, "count", {"n": "1"}) == {
            "content": [{"type": "text", "text": "2"}], "isError": False, "resultType": "complete"}
        refused = await call_locally(provider, "refuse", {"text": "zap"})
        assert refused["isError"] and refused["content"][0]["text"] == "text: 'zap' is not a word this tool takes"
        missing = await call_locally(provider, "nope", {})
        assert missing["isError"] and missing["content"][0]["text"] == "unknown tool 'nope'"
        with pytest.raises(RuntimeError, match="a bug in the provider"):  # a fault is the command's to report
            await call_locally(provider, "crash", {})
        # The local user is the machine's admin; no other provider runs here to call or to offer a service.
        assert host.caller(None) is LOCAL_USER
        other = await host.call_tool("files__read", {})
        assert other.is_error and "no other provider runs beside 'errs'" in other.content[0].text
        assert host.service("files.changes", ChangeFeed) is None and host.tools() == []
