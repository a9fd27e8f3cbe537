"""Config: the checked-in schema is current, bad configs fail fast with the key path, exit code 2."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from hub.config import ConfigError, config_json_schema, load_config
from tests.helpers import JUNCTION, ROOT, hub_env


def test_checked_in_schema_is_current() -> None:
    checked_in = json.loads((ROOT / "schemas" / "config.schema.json").read_text())
    assert checked_in == json.loads(json.dumps(config_json_schema())), (
        "schemas/config.schema.json is stale: run `junction schema > schemas/config.schema.json`"
    )


def test_no_file_gives_defaults() -> None:
    config = load_config(None, env={})
    assert (config.server.host, config.server.port, config.server.path) == ("127.0.0.1", 8765, "/mcp")
    assert config.mcp_url() == "http://127.0.0.1:8765/mcp"


def test_xdg_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert load_config(None, env={}).data_dir() == tmp_path / "junction"


def test_init_writes_every_key_with_its_true_default(tmp_path: Path) -> None:
    """`junction init` names every key of the schema; as written (all commented) it is the defaults, and with
    every key uncommented it still loads, to the same values: no default in it is wrong or not TOML."""
    import msgspec

    from hub.config import config_json_schema
    from hub.config_template import config_template

    text = config_template()
    path = tmp_path / "j.toml"
    path.write_text(text)
    defaults = msgspec.to_builtins(load_config(None, env={}))
    as_written = load_config(path, env={})
    assert msgspec.to_builtins(as_written)["server"] == defaults["server"] and not as_written.raw_providers

    schema = config_json_schema()
    for name, definition in schema["$defs"].items():
        for key in definition.get("properties", {}):
            if name == "Config" or key in ("source",):
                continue
            as_key = re.search(rf"^# {re.escape(key)} = ", text, re.M)
            as_table = re.search(rf"^# \[(.+\.)?{re.escape(key)}(\.NAME)?\]$", text, re.M)
            assert as_key or as_table, f"{name}.{key} is not in the template"

    # Uncomment every key of every table but the NAME examples (and what has no default to show).
    lines, inside_example = [], False
    for line in text.splitlines():
        if line.startswith("# ["):
            inside_example = ".NAME" in line
            lines.append("" if inside_example else line[2:])
        elif not inside_example and re.match(r"^# [\w\"-]+ = ", line) and "(not set)" not in line:
            lines.append(line[2:])
    path.write_text("\n".join(lines) + "\n")
    everything = load_config(path, env={})
    for section in ("server", "store", "log", "auth", "outbound"):
        assert msgspec.to_builtins(everything)[section] == defaults[section], section
    from importlib.metadata import entry_points

    from hub.host import load_connector_class  # noqa: F401  (providers' own settings: each table converts)

    for ep in entry_points(group="junction.providers"):
        own = getattr(ep.load(), "config_type", None)
        raw = dict(everything.raw_providers[ep.name])
        for switch in ("enabled", "prefix", "module"):
            raw.pop(switch, None)
        if own is not None:
            msgspec.convert(raw, own)


@pytest.mark.parametrize(
    ("toml", "path", "reason"),
    [
        ("[server]\nport = 'eighty'\n", "server.port", "expected `int`, got `str`"),
        ("[server]\nport = 70000\n", "server.port", "expected `int` <= 65535"),
        ("[server]\nprot = 1\n", "server.prot", "unknown key"),
        ("[sever]\nport = 1\n", "sever", "unknown key"),
        ("[server]\nallowed_hosts = [1]\n", "server.allowed_hosts[0]", "expected `str`, got `int`"),
        ("[providers.hub]\nprefix = 'bad prefix!'\n", "providers.hub.prefix", "expected `str` matching regex"),
        ("[providers.hub]\nenabled = 'yes'\n", "providers.hub.enabled", "expected `bool`, got `str`"),
        ("[log]\nlevel = 'loud'\n", "log.level", "expected `str` matching regex"),
        ("[server]\nhost = '${NOT_SET_ANYWHERE_42}'\n", "server.host", "environment variable NOT_SET_ANYWHERE_42 is not set"),
        ("[auth.oauth]\nredirect_schemes = ['javascript']\n", "auth.oauth.redirect_schemes",
         "'javascript:' can never be a redirect target"),
        ("[auth.oauth]\nissuer = 'https://hub.example/auth'\n", "auth.oauth.issuer", "the issuer is an origin"),
        ("[auth.oauth]\naccess_token_ttl = 5\n", "auth.oauth.access_token_ttl", "expected `int` >= 60"),
        ("[outbound]\nallowed_networks = ['10.0.0.1/8']\n", "outbound.allowed_networks[0]",
         "'10.0.0.1/8' has bits set beyond its prefix length: write 10.0.0.0/8"),
        ("[outbound]\nallowed_networks = ['intranet']\n", "outbound.allowed_networks[0]", "'intranet' is not an IP network"),
        ("[outbound]\nallowed_hosts = ['ok.example', 'bad host']\n", "outbound.allowed_hosts[1]",
         "'bad host' is not a host name"),
        ("[outbound]\nallowed_hosts = ['wiki:99999']\n", "outbound.allowed_hosts[0]", "'wiki:99999': the port must be"),
        ("[outbound]\nmax_redirects = 50\n", "outbound.max_redirects", "expected `int` <= 20"),
        ("[outbound]\nallow_privat = true\n", "outbound.allow_privat", "unknown key"),
    ],
)
def test_bad_config_names_key_path_and_reason(tmp_path: Path, toml: str, path: str, reason: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_config(cfg, env={})
    assert err.value.path == path
    assert err.value.reason.startswith(reason), err.value.reason


def test_not_toml(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[server\nport=1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(cfg, env={})


def test_env_overrides_and_references(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[server]\npublic_url = '${HUB_URL}'\n")
    config = load_config(cfg, env={"JUNCTION__SERVER__PORT": "9001", "HUB_URL": "https://hub.example/mcp"})
    assert config.server.port == 9001
    assert config.mcp_url() == "https://hub.example/mcp"
    cfg.write_text('[connectors.gh]\nurl = "https://x.example/mcp"\nheaders = { Authorization = "Bearer ${GH_TOKEN}" }\n')
    config = load_config(cfg, env={"GH_TOKEN": "s3cret"})
    assert config.raw_connectors["gh"]["headers"] == {"Authorization": "Bearer s3cret"}
    with pytest.raises(ConfigError, match=r"connectors\.gh\.headers\.Authorization: environment variable GH_TOKEN is not set"):
        load_config(cfg, env={})


def test_unknown_provider_fails_with_its_path(tmp_path: Path) -> None:
    from hub.app import Hub

    cfg = tmp_path / "c.toml"
    cfg.write_text("[providers.nosuch]\nenabled = true\n")
    with pytest.raises(ConfigError) as err:
        Hub(load_config(cfg, env={}))
    assert err.value.path == "providers.nosuch" and "no provider named 'nosuch'" in err.value.reason


def test_provider_without_settings_refuses_extra_keys(tmp_path: Path) -> None:
    from hub.app import Hub

    cfg = tmp_path / "c.toml"
    cfg.write_text("[providers.hub]\ncolour = 'red'\n")
    with pytest.raises(ConfigError) as err:
        Hub(load_config(cfg, env={}))
    assert err.value.path == "providers.hub.colour"


def test_serve_with_bad_config_exits_2_with_one_line_and_starts_nothing(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[server]\nport = 'eighty'\n")
    proc = subprocess.run(
        [*JUNCTION, "serve", "--config", str(cfg)], cwd=ROOT, env=hub_env(tmp_path / "data"),
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"junction: config error in {cfg}: server.port: expected `int`, got `str`"
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not (tmp_path / "data").exists(), "nothing may be created for a config that fails"


def test_missing_config_file(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*JUNCTION, "tools", "--config", str(tmp_path / "nope.toml")], cwd=ROOT, env=hub_env(tmp_path),
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert "file not found" in proc.stderr and "junction init" in proc.stderr


def test_init_writes_commented_default_then_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "cfg" / "junction.toml"
    env = hub_env(tmp_path)
    first = subprocess.run([*JUNCTION, "init", str(target)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert first.returncode == 0 and target.read_text().startswith("# Junction hub configuration")
    second = subprocess.run([*JUNCTION, "init", str(target)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert second.returncode == 1 and "already exists" in second.stderr



def test_junction_config_env_is_used(tmp_path: Path) -> None:
    cfg = tmp_path / "env.toml"
    cfg.write_text("[server]\nport = -1\n")
    proc = subprocess.run([*JUNCTION, "serve"], cwd=ROOT, env=hub_env(tmp_path / "d", JUNCTION_CONFIG=str(cfg)),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"junction: config error in {cfg}: server.port: expected `int` >= 0"


def test_disabled_provider_is_not_loaded(tmp_path: Path) -> None:
    cfg = tmp_path / "off.toml"
    cfg.write_text("".join(f"[providers.{name}]\nenabled = false\n" for name in ("hub", "rag", "automation", "agents")))
    proc = subprocess.run([*JUNCTION, "tools", "--json", "--config", str(cfg)], cwd=ROOT, env=hub_env(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and json.loads(proc.stdout) == []


def test_unusable_data_dir_is_one_line(tmp_path: Path) -> None:
    import sqlite3

    data = tmp_path / "data" / "junction"
    data.mkdir(parents=True)
    db = sqlite3.connect(data / "junction.db")
    db.execute("PRAGMA user_version = 999")
    db.close()
    proc = subprocess.run([*JUNCTION, "serve", "--port", "0"], cwd=ROOT, env=hub_env(tmp_path / "data"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith(f"junction: cannot use the data directory {data}: the database")
    assert "newer than this Junction understands" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("toml", "path", "reason"),
    [
        ("[connectors.gh]\nprefix = 'x'\n", "connectors.gh",
         "give either `command` (a stdio program) or `url` (a Streamable HTTP endpoint)"),
        ("[connectors.gh]\ncommand = 'x'\nurl = 'http://a'\n", "connectors.gh", "give either `command`"),
        ("[connectors.gh]\nurl = 'ftp://a'\n", "connectors.gh", "`url` must start with http:// or https://"),
        ("[connectors.gh]\ncommand = 'x'\ncall_timeout = 'soon'\n", "connectors.gh.call_timeout",
         "expected `float`, got `str`"),
        ("[connectors.gh]\ncommand = 'x'\ncomand = 'y'\n", "connectors.gh.comand", "unknown key"),
        ("[connectors.gh]\ncommand = 'x'\ntype = 'nosuch'\n", "connectors.gh.type", "no connector type 'nosuch'"),
        ("[connectors.hub]\ncommand = 'x'\n[providers.hub]\nenabled = true\n", "connectors.hub",
         "a provider is also named 'hub'"),
    ],
)
def test_bad_connector_config(tmp_path: Path, toml: str, path: str, reason: str) -> None:
    from hub.app import Hub

    cfg = tmp_path / "c.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError) as err:
        Hub(load_config(cfg, env={}))
    assert err.value.path == path and err.value.reason.startswith(reason), (err.value.path, err.value.reason)


def test_each_key_says_where_it_was_set_and_secrets_never_show(tmp_path: Path) -> None:
    from hub.settings import MASK, effective_settings

    cfg = tmp_path / "c.toml"
    cfg.write_text('[server]\nport = 9100\n[tracing]\nheaders = { "x-api-key" = "literal-key-1" }\n'
                   '[auth.external]\nclient_secret = "${secret:idp}"\n'
                   '[connectors.gh]\nurl = "https://x.example/mcp"\nheaders = { Authorization = "Bearer ${GH_TOKEN}" }\n')
    config = load_config(cfg, env={"JUNCTION__LOG__LEVEL": "debug", "GH_TOKEN": "s3cret-gh"},
                         secret=lambda name: "resolved-idp-secret")
    assert config.sources["server.port"] == f"file {cfg}"
    assert config.sources["log.level"] == "environment variable JUNCTION__LOG__LEVEL"
    assert "server.host" not in config.sources
    rows = {row["key"]: row for row in effective_settings(config)}
    assert rows["server.port"]["value"] == 9100 and rows["server.port"]["default"] == 8765
    assert rows["log.level"]["source"] == "environment variable JUNCTION__LOG__LEVEL"
    assert rows["server.host"]["source"] == "default" and rows["server.host"]["description"] == ""
    assert "reverse proxy" in rows["server.public_url"]["description"]
    assert rows["auth.external.client_secret"]["value"] == "${secret:idp}"
    assert rows["tracing.headers"]["value"] == {"x-api-key": MASK}
    assert rows["connectors.gh.headers"]["value"] == {"Authorization": "Bearer ${GH_TOKEN}"}
    assert rows["connectors.gh.url"]["source"] == f"file {cfg}"
    assert rows["auth.oauth.access_token_ttl"]["value"] == 3600  # a number named like a token is no secret
    text = json.dumps(list(rows.values()))
    assert "resolved-idp-secret" not in text and "s3cret-gh" not in text and "literal-key-1" not in text
