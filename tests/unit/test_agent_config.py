"""Agent configuration: precedence flags > env > file > defaults, URLs, allow-list."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor_agent.config import AgentConfig, load_config
from monitor_agent.errors import ConfigError

NO_FLAGS: dict[str, object] = {}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_defaults_match_the_issue() -> None:
    """Interval 5 s, ws transport, backoff 1 s..60 s, no host commands."""
    config = load_config(NO_FLAGS, environ={})
    assert config.interval == 5.0
    assert config.transport == "ws"
    assert (config.backoff_base, config.backoff_cap) == (1.0, 60.0)
    assert config.host_commands() == {}


def test_flags_beat_env_which_beats_file(tmp_path: Path) -> None:
    """Each source overrides the one below it, key by key."""
    path = write(tmp_path, 'server = "http://file:1"\ntoken = "file"\ninterval = 7\n')
    env = {"MONITOR_AGENT_TOKEN": "env", "MONITOR_AGENT_INTERVAL": "3"}
    config = load_config({"interval": 2.0, "token": None}, environ=env, config_path=path)
    assert config.server == "http://file:1"
    assert config.token == "env"
    assert config.interval == 2.0


def test_config_path_from_env(tmp_path: Path) -> None:
    """MONITOR_AGENT_CONFIG names the file when --config is absent."""
    path = write(tmp_path, 'device_id = "from-file"\n')
    config = load_config(NO_FLAGS, environ={"MONITOR_AGENT_CONFIG": str(path)})
    assert config.device_id == "from-file"


def test_monitor_token_is_a_fallback() -> None:
    """MONITOR_TOKEN (the hub's variable) works, MONITOR_AGENT_TOKEN wins over it."""
    assert load_config(NO_FLAGS, environ={"MONITOR_TOKEN": "a"}).token == "a"
    both = {"MONITOR_TOKEN": "a", "MONITOR_AGENT_TOKEN": "b"}
    assert load_config(NO_FLAGS, environ=both).token == "b"


@pytest.mark.parametrize(
    ("server", "ws", "http"),
    [
        ("http://hub:8000", "ws://hub:8000/ws/agent", "http://hub:8000"),
        ("https://hub.example/mon/", "wss://hub.example/mon/ws/agent", "https://hub.example/mon"),
        ("ws://hub:8000", "ws://hub:8000/ws/agent", "http://hub:8000"),
        ("wss://hub/ws/agent", "wss://hub/ws/agent", "https://hub"),
    ],
)
def test_urls_are_derived_from_server(server: str, ws: str, http: str) -> None:
    """Any of http(s)/ws(s) gives both the /ws/agent endpoint and the REST base."""
    config = AgentConfig(server=server)
    assert (config.ws_url(), config.http_url()) == (ws, http)


def test_bad_scheme_is_a_clear_error() -> None:
    """A server URL without a usable scheme is refused naming the field."""
    with pytest.raises(ConfigError, match="server"):
        load_config({"server": "hub:8000"}, environ={})


def test_unknown_key_in_file_is_refused(tmp_path: Path) -> None:
    """A typo in the TOML file is an error, not silently ignored."""
    with pytest.raises(ConfigError, match="intervall"):
        load_config(NO_FLAGS, environ={}, config_path=write(tmp_path, "intervall = 5\n"))


def test_host_commands_from_file_and_allow(tmp_path: Path) -> None:
    """[commands.X] tables are enabled; predefined ones (reboot) only when allowed."""
    path = write(tmp_path, '[commands.uptime]\nargv = ["uptime"]\ntimeout = 3\n')
    config = load_config({"allow": ["reboot"]}, environ={}, config_path=path)
    assert set(config.host_commands()) == {"uptime", "reboot"}
    assert config.host_commands()["uptime"].timeout == 3


def test_allow_accumulates_across_sources(tmp_path: Path) -> None:
    """allow from file, env (comma-separated) and flags add up."""
    path = write(tmp_path, 'allow = ["a"]\n[commands.a]\nargv=["true"]\n[commands.b]\nargv=["true"]\n')
    config = load_config({"allow": ["reboot"]}, environ={"MONITOR_AGENT_ALLOW": "b"}, config_path=path)
    assert config.allow == ["a", "b", "reboot"]


def test_allowing_an_undefined_command_fails_at_start() -> None:
    """--allow of a name with no argv template is an error naming it."""
    with pytest.raises(ConfigError, match="shell"):
        load_config({"allow": ["shell"]}, environ={})


def test_missing_file_is_named(tmp_path: Path) -> None:
    """A --config path that does not exist is reported with its path."""
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(NO_FLAGS, environ={}, config_path=tmp_path / "nope.toml")


def test_environment_text_is_converted() -> None:
    """MONITOR_AGENT_* values are text: numbers, paths and the log level are converted."""
    env = {
        "MONITOR_AGENT_BATCH_SIZE": "10",
        "MONITOR_AGENT_STATE_DIR": "/srv/agent",
        "MONITOR_AGENT_LOG_LEVEL": "debug",
        "MONITOR_AGENT_POLL_INTERVAL": "2.5",
    }
    config = load_config(NO_FLAGS, environ=env)
    assert (config.batch_size, config.state_dir) == (10, Path("/srv/agent"))
    assert (config.log_level, config.poll_interval) == ("DEBUG", 2.5)


def test_every_bad_value_is_named() -> None:
    """One error lists each setting that does not fit, with what was given."""
    with pytest.raises(ConfigError) as caught:
        load_config({"interval": "-1", "batch_size": "5000", "transport": "tcp"}, environ={})
    for name in ("interval", "batch_size", "transport", "'tcp'"):
        assert name in str(caught.value)


def test_bad_host_command_table_is_named(tmp_path: Path) -> None:
    """A [commands.NAME] table with a bad or unknown key names commands.NAME.key."""
    path = write(tmp_path, '[commands.x]\nargv = ["a"]\ntimeout = -1\n')
    with pytest.raises(ConfigError, match=r"commands\.x\.timeout"):
        load_config(NO_FLAGS, environ={}, config_path=path)
    path = write(tmp_path, '[commands.x]\nargv = ["a"]\nshell = true\n')
    with pytest.raises(ConfigError, match=r"commands\.x\.shell"):
        load_config(NO_FLAGS, environ={}, config_path=path)
    with pytest.raises(ConfigError, match=r"commands\.x\.argv"):
        load_config(NO_FLAGS, environ={}, config_path=write(tmp_path, "[commands.x]\ntimeout = 1\n"))


def test_token_stays_out_of_the_repr() -> None:
    """Printing the config (a log line, a traceback) does not show the token."""
    assert "s3cret" not in repr(load_config({"token": "s3cret"}, environ={}))


def test_tags_from_file_env_and_flag(tmp_path: Path) -> None:
    """``tags`` is a list in the file, comma-separated in the environment and the flag; duplicates go."""
    path = write(tmp_path, 'tags = ["env=prod", "rack-4", "env=prod"]\n')
    assert load_config(NO_FLAGS, environ={}, config_path=path).tags == ["env=prod", "rack-4"]
    from_env = load_config(NO_FLAGS, environ={"MONITOR_AGENT_TAGS": "site/paris, db"})
    assert from_env.tags == ["site/paris", "db"]
    assert load_config({"tags": "a,b"}, environ={}).tags == ["a", "b"]


@pytest.mark.parametrize("tags", [["has space"], ["-lead"], ["x" * 65], [f"t{i}" for i in range(33)], [3]])
def test_tags_the_hub_would_refuse_are_config_errors(tags: list[object]) -> None:
    """A tag the hub's hello check refuses stops the agent at start, naming ``tags``."""
    with pytest.raises(ConfigError, match="tags"):
        AgentConfig(tags=tags)  # type: ignore[arg-type]


SEVERAL = ["http://hub-a:8000", "http://hub-b:8000/mon"]


@pytest.mark.parametrize(
    ("source", "toml", "env", "flags"),
    [
        ("flag", "", {}, {"server": "http://hub-a:8000,http://hub-b:8000/mon"}),
        ("env", "", {"MONITOR_AGENT_SERVER": "http://hub-a:8000, http://hub-b:8000/mon"}, {}),
        ("toml string", 'server = "http://hub-a:8000,http://hub-b:8000/mon"\n', {}, {}),
        ("toml array", 'server = ["http://hub-a:8000", "http://hub-b:8000/mon"]\n', {}, {}),
    ],
)
def test_several_servers_from_every_source(
    tmp_path: Path, source: str, toml: str, env: dict[str, str], flags: dict[str, object]
) -> None:
    """``server`` takes several URLs (comma-separated text or a TOML array), kept in order."""
    config = load_config(flags, environ=env, config_path=write(tmp_path, toml) if toml else None)
    assert config.servers() == SEVERAL, source
    assert config.ws_urls() == ["ws://hub-a:8000/ws/agent", "ws://hub-b:8000/mon/ws/agent"]
    assert config.http_urls() == SEVERAL
    assert (config.ws_url(), config.http_url()) == ("ws://hub-a:8000/ws/agent", "http://hub-a:8000")


def test_one_server_is_unchanged() -> None:
    """A single URL is kept exactly as given: one hub, nothing to fail over to."""
    config = load_config({"server": "https://hub.example/mon/"}, environ={})
    assert config.server == "https://hub.example/mon/"
    assert config.servers() == ["https://hub.example/mon/"]


def test_flag_list_beats_file_list(tmp_path: Path) -> None:
    """The whole list is one setting: a flag's list replaces the file's, it does not add to it."""
    path = write(tmp_path, 'server = ["http://a:1", "http://b:1"]\n')
    assert load_config({"server": "http://c:1"}, environ={}, config_path=path).servers() == ["http://c:1"]


def test_repeated_and_empty_entries_are_dropped() -> None:
    """Spaces, empty items and a URL given twice do not make extra attempts."""
    config = load_config({"server": " http://a:1 ,, http://b:1, http://a:1,"}, environ={})
    assert config.servers() == ["http://a:1", "http://b:1"]


@pytest.mark.parametrize(
    ("server", "message"),
    [
        ("http://a:1,hub-b:8000", r"server: .*'hub-b:8000' \(URL 2 of 2\)"),
        ("http://a:1,ftp://b:1", r"server: .*'ftp://b:1' \(URL 2 of 2\)"),
        (["http://a:1", "http://"], r"server: .*'http://' \(URL 2 of 2\)"),
        ("", "server: expected at least one"),
        (" , ", "server: expected at least one"),
        (["http://a:1", 8000], "server: expected a URL, or a list of URLs"),
    ],
)
def test_a_bad_url_in_the_list_is_named(server: object, message: str) -> None:
    """Every URL is checked like a single one; the error names the bad one and its place."""
    with pytest.raises(ConfigError, match=message):
        load_config({"server": server}, environ={})


def test_tls_and_plain_urls_are_not_mixed() -> None:
    """Failing over from https to http would send the credential in clear: refused at start."""
    with pytest.raises(ConfigError, match="mixes https/wss and plain http/ws"):
        load_config({"server": "https://a.example,http://b.example"}, environ={})
    with pytest.raises(ConfigError, match="mixes"):
        load_config({"server": "ws://a:1,wss://b.example"}, environ={})
    both = load_config({"server": "https://a.example,wss://b.example"}, environ={})
    assert both.http_urls() == ["https://a.example", "https://b.example"]


def test_tls_settings_need_tls_on_every_url(tmp_path: Path) -> None:
    """ca_file and pin_sha256 apply to every hub, so plain URLs with them are refused as before."""
    with pytest.raises(ConfigError, match="ca_file and pin_sha256 need an https"):
        load_config({"server": "http://a:1,http://b:1", "pin_sha256": "ab" * 32}, environ={})


def test_logged_urls_carry_no_secret() -> None:
    """A URL is logged without user:password@ and without its query."""
    from monitor_agent.config import public_url

    assert (
        public_url("https://user:s3cret@hub.example:8443/mon?token=s3cret") == "https://hub.example:8443/mon"
    )
    assert public_url("ws://hub:8000/ws/agent") == "ws://hub:8000/ws/agent"
