"""config.toml: the shipped file, defaults, and every way a file can be wrong.

Every invalid input must surface as ConfigError with a message naming what is wrong; no other
exception type may escape ``parse_settings`` / ``load_settings``.
"""

from __future__ import annotations

import contextlib
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from orchestrator import config as config_module
from orchestrator.config import (
    SANDBOX_KEY,
    CallbackSettings,
    DaemonSettings,
    DownloadSettings,
    LoggingSettings,
    PollingSettings,
    ProviderSettings,
    Settings,
    StorageSettings,
    SubmitSettings,
    load_settings,
    parse_listen,
    parse_settings,
    resolve_db_url,
    validate_job_key,
)
from orchestrator.exceptions import ConfigError
from orchestrator.machine import Policy

REPO_ROOT = Path(__file__).resolve().parents[2]
REPO_CONFIG = REPO_ROOT / "config.toml"

SECTIONS: dict[str, type] = {
    "storage": StorageSettings,
    "provider": ProviderSettings,
    "polling": PollingSettings,
    "submit": SubmitSettings,
    "downloads": DownloadSettings,
    "callbacks": CallbackSettings,
    "daemon": DaemonSettings,
    "logging": LoggingSettings,
}

GOOD_JOB: dict[str, Any] = {
    "key": "first-song",
    "kind": "generate_music",
    "params": {"customMode": False, "instrumental": False, "model": "V4_5", "prompt": "calm"},
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORCHESTRATOR_CONFIG", raising=False)
    monkeypatch.delenv("SUNO_API_KEY", raising=False)


def parse(raw: dict[str, Any], base_dir: Path | None = None) -> Settings:
    return parse_settings(raw, base_dir=base_dir or Path("/srv/orch"))


def parse_error(raw: dict[str, Any]) -> str:
    """Parse ``raw``; it must fail with ConfigError (pytest.raises lets any other type escape)."""
    with pytest.raises(ConfigError) as info:
        parse(raw)
    return str(info.value)


# --- the shipped config.toml ------------------------------------------------------------------


def test_repo_config_exists_and_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT)
    settings = load_settings("config.toml")
    assert settings.source == Path("config.toml")
    assert settings.base_dir == REPO_ROOT


@pytest.mark.parametrize("section", SECTIONS)
def test_repo_config_shows_the_defaults(section: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """config.toml says every option is shown with its default: file and code must agree."""
    monkeypatch.chdir(REPO_ROOT)
    loaded = getattr(load_settings("config.toml"), section)
    default = SECTIONS[section]()
    drift = {
        f.name: (getattr(loaded, f.name), getattr(default, f.name))
        for f in fields(default)
        if getattr(loaded, f.name) != getattr(default, f.name)
    }
    assert drift == {}, f"[{section}] file vs code default: {drift}"


def test_repo_config_shows_every_option() -> None:
    """Every option the code knows appears (uncommented) in config.toml."""
    import tomllib

    raw = tomllib.loads(REPO_CONFIG.read_text())
    for name, cls in SECTIONS.items():
        assert set(raw[name]) == {f.name for f in fields(cls)}, name


def test_repo_config_job_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT)
    (job,) = load_settings("config.toml").jobs
    assert job.key == "first-song"
    assert job.kind == "generate_music"
    assert job.params["prompt"] == "a calm piano piece"


# --- finding the file -------------------------------------------------------------------------


def test_missing_default_file_gives_embedded_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.source is None
    assert settings.base_dir == tmp_path
    for name, cls in SECTIONS.items():
        assert getattr(settings, name) == cls()
    assert settings.jobs == ()
    assert settings.database_url == f"sqlite:///{tmp_path / 'var' / 'orchestrator.db'}"
    assert settings.artifacts_path == tmp_path / "var" / "artifacts"


def test_default_file_in_cwd_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.toml").write_text("[polling]\ninterval_s = 12\n")
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.polling.interval_s == 12.0
    assert isinstance(settings.polling.interval_s, float)


def test_env_var_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text('[logging]\nlevel = "debug"\n')
    monkeypatch.setenv("ORCHESTRATOR_CONFIG", str(path))
    assert load_settings().logging.level == "debug"


def test_missing_env_var_file_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match=r"not found: .*nope\.toml"):
        load_settings()


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not found: .*missing\.toml"):
        load_settings(tmp_path / "missing.toml")


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[polling\ninterval_s = = 3\n")
    with pytest.raises(ConfigError, match=r"broken\.toml") as info:
        load_settings(path)
    assert "not valid TOML" in str(info.value)


def test_unreadable_path_is_a_config_error(tmp_path: Path) -> None:
    directory = tmp_path / "dir.toml"
    directory.mkdir()
    with pytest.raises(ConfigError, match=r"dir\.toml"):
        load_settings(directory)


def test_errors_from_a_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text("[polling]\ninterval_s = -1\n")
    with pytest.raises(ConfigError, match=r"mine\.toml.*interval_s"):
        load_settings(path)


# --- unknown names ----------------------------------------------------------------------------


def test_unknown_section_is_named_with_the_known_ones() -> None:
    message = parse_error({"poling": {"interval_s": 3}})
    assert "poling" in message
    for name in [*SECTIONS, "jobs"]:
        assert name in message


def test_unknown_key_is_named_with_the_known_ones() -> None:
    message = parse_error({"polling": {"intervall_s": 3}})
    assert "[polling]" in message
    assert "intervall_s" in message
    assert "interval_s" in message.split("known:")[1]
    assert "deadline_s" in message


def test_section_must_be_a_table() -> None:
    assert "[polling] must be a table" in parse_error({"polling": 3})


# --- wrong types and values -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"polling": {"concurrency": True}}, "concurrency: must be a whole number"),
        ({"polling": {"concurrency": 2.5}}, "concurrency: must be a whole number"),
        ({"polling": {"concurrency": "8"}}, "concurrency: must be a whole number"),
        ({"polling": {"interval_s": "30"}}, "interval_s: must be a number"),
        ({"polling": {"interval_s": True}}, "interval_s: must be a number"),
        ({"polling": {"interval_s": float("nan")}}, "interval_s: must be a finite number"),
        ({"polling": {"deadline_s": float("inf")}}, "deadline_s: must be a finite number"),
        ({"callbacks": {"enabled": 1}}, "enabled: must be true or false"),
        ({"callbacks": {"enabled": "yes"}}, "enabled: must be true or false"),
        ({"provider": {"base_url": 8900}}, "base_url: must be a string"),
        ({"storage": {"artifacts_dir": ""}}, "artifacts_dir: must be a path string"),
        ({"storage": {"artifacts_dir": 3}}, "artifacts_dir: must be a path string"),
        ({"downloads": {"allowed_networks": "127.0.0.0/8"}}, "must be a list of strings"),
        ({"downloads": {"allowed_networks": [127]}}, "must be a list of strings"),
        ({"downloads": {"allowed_networks": ["not-a-cidr"]}}, "allowed_networks"),
        ({"downloads": {"allowed_networks": ["127.0.0.1/8"]}}, "allowed_networks"),
        ({"downloads": {"allowed_networks": ["10.0.0.0/33"]}}, "allowed_networks"),
        ({"callbacks": {"mode": "Verify"}}, "mode: must be verify or trust"),
        ({"callbacks": {"mode": "push"}}, "mode: must be verify or trust"),
        ({"provider": {"profile": "suno"}}, "profile: must be sunoapi or kie"),
        ({"provider": {"base_url": "ftp://x"}}, "base_url: must be an http(s) URL"),
        ({"callbacks": {"public_url": "127.0.0.1:8787"}}, "public_url: must be an http(s) URL"),
        ({"submit": {"uncertain_policy": "retry"}}, "uncertain_policy: must be hold, resubmit"),
        ({"callbacks": {"listen": "127.0.0.1"}}, "listen: must be HOST:PORT"),
        ({"callbacks": {"listen": ":8787"}}, "listen: must be HOST:PORT"),
        ({"callbacks": {"listen": "127.0.0.1:http"}}, "listen: must be HOST:PORT"),
        ({"callbacks": {"listen": "127.0.0.1:65536"}}, "listen: must be HOST:PORT"),
        ({"callbacks": {"listen": "127.0.0.1:-1"}}, "listen: must be HOST:PORT"),
        ({"callbacks": {"listen": "127.0.0.1:\u00b2"}}, "listen: must be HOST:PORT"),
        ({"callbacks": {"listen": 8787}}, "listen: must be a string"),
        ({"polling": {"interval_s": 0}}, "interval_s: must be greater than 0"),
        ({"polling": {"interval_s": -5.0}}, "interval_s: must be greater than 0"),
        ({"polling": {"deadline_s": 0}}, "deadline_s: must be greater than 0"),
        ({"polling": {"tick_s": 0}}, "tick_s: must be greater than 0"),
        ({"daemon": {"lease_s": -1}}, "lease_s: must be greater than 0"),
        ({"provider": {"timeout_s": 0}}, "timeout_s: must be greater than 0"),
        ({"polling": {"jitter": 1.0}}, "jitter: must be in [0, 1)"),
        ({"polling": {"jitter": -0.1}}, "jitter: must be in [0, 1)"),
        ({"polling": {"concurrency": 0}}, "concurrency: must be at least 1"),
        ({"downloads": {"concurrency": 0}}, "concurrency: must be at least 1"),
        ({"callbacks": {"threads": 0}}, "threads: must be at least 1"),
        ({"provider": {"submit_rate": 0}}, "submit_rate: must be at least 1"),
        ({"logging": {"format": "text"}}, "format: must be json or console"),
        ({"logging": {"level": "verbose"}}, "level: must be debug, info"),
        ({"storage": {"url": "mysql://x/y"}}, "url: must be a sqlite:/// or postgresql URL"),
    ],
)
def test_wrong_values_are_config_errors(raw: dict[str, Any], expected: str) -> None:
    assert expected in parse_error(raw)


def test_int_is_accepted_for_a_float_option() -> None:
    settings = parse({"polling": {"interval_s": 10, "jitter": 0}})
    assert settings.polling.interval_s == 10.0
    assert isinstance(settings.polling.interval_s, float)
    assert settings.polling.jitter == 0.0


def test_valid_values_are_taken() -> None:
    settings = parse(
        {
            "provider": {"profile": "kie", "base_url": "https://api.example.com"},
            "callbacks": {"mode": "trust", "listen": "[::1]:9000", "enabled": False},
            "submit": {"uncertain_policy": "resubmit"},
            "downloads": {"allowed_networks": ["10.0.0.0/8"]},
            "logging": {"level": "WARNING", "format": "console"},
        }
    )
    assert settings.provider.profile == "kie"
    assert settings.callbacks.mode == "trust"
    assert settings.callbacks.enabled is False
    assert settings.submit.uncertain_policy == "resubmit"
    assert settings.downloads.allowed_networks == ("10.0.0.0/8",)
    assert settings.logging.format == "console"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:8787", ("127.0.0.1", 8787)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        ("localhost:80", ("localhost", 80)),
        ("[::1]:9000", ("::1", 9000)),
    ],
)
def test_parse_listen(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["", "8787", "host:", ":80", "h:99999", "h:8o", "h:\uff11\uff12"])
def test_parse_listen_refuses(value: str) -> None:
    with pytest.raises(ConfigError, match="must be HOST:PORT"):
        parse_listen(value, "here")


# --- [[jobs]] ---------------------------------------------------------------------------------


def test_jobs_are_parsed() -> None:
    other = {**GOOD_JOB, "key": "second.song_2"}
    settings = parse({"jobs": [GOOD_JOB, other]})
    assert [job.key for job in settings.jobs] == ["first-song", "second.song_2"]
    assert settings.jobs[0].params == GOOD_JOB["params"]


def test_duplicate_job_keys() -> None:
    assert "duplicate key 'first-song'" in parse_error({"jobs": [GOOD_JOB, GOOD_JOB]})


@pytest.mark.parametrize(
    "key", ["../x", "a/b", ".hidden", "-dash", "with space", "é", "k" * 129, "", "   "]
)
def test_bad_job_key_alphabet(key: str) -> None:
    message = parse_error({"jobs": [{**GOOD_JOB, "key": key}]})
    assert "[[jobs]] #1" in message
    assert "key" in message


def test_job_key_must_be_a_string() -> None:
    assert "key must be a non-empty string" in parse_error({"jobs": [{**GOOD_JOB, "key": 7}]})


@pytest.mark.parametrize("key", ["a", "A9", "x" * 128, "0.song_-x"])
def test_good_job_keys(key: str) -> None:
    validate_job_key(key)


def test_unknown_kind_lists_the_known_ones() -> None:
    message = parse_error({"jobs": [{**GOOD_JOB, "kind": "karaoke"}]})
    assert "karaoke" in message
    assert "generate_music" in message
    assert "(first-song)" in message


def test_kind_must_be_a_string() -> None:
    assert "kind must be a string" in parse_error({"jobs": [{**GOOD_JOB, "kind": 3}]})


def test_missing_required_params() -> None:
    job = {**GOOD_JOB, "params": {"customMode": False, "prompt": "x"}}
    message = parse_error({"jobs": [job]})
    assert "instrumental" in message
    assert "model" in message


def test_invalid_param_value_is_a_config_error() -> None:
    job = {**GOOD_JOB, "params": {**GOOD_JOB["params"], "instrumental": "no"}}
    assert "instrumental must be a bool" in parse_error({"jobs": [job]})


def test_callback_url_in_params_is_refused() -> None:
    job = {**GOOD_JOB, "params": {**GOOD_JOB["params"], "callBackUrl": "http://evil"}}
    assert "callBackUrl" in parse_error({"jobs": [job]})


@pytest.mark.parametrize("params", ["prompt", 3, ["a"]])
def test_params_must_be_a_table(params: object) -> None:
    assert "params must be a table" in parse_error({"jobs": [{**GOOD_JOB, "params": params}]})


def test_unknown_job_field() -> None:
    assert "unknown key(s) priority" in parse_error({"jobs": [{**GOOD_JOB, "priority": 1}]})


def test_jobs_must_be_an_array_of_tables() -> None:
    assert "array of tables" in parse_error({"jobs": {"key": "x"}})
    assert "must be a table" in parse_error({"jobs": ["x"]})


def test_jobs_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[[jobs]]\nkey = "v1"\nkind = "music_video"\nparams = { taskId = "t", audioId = "a" }\n'
    )
    (job,) = load_settings(path).jobs
    assert job.kind == "music_video"
    assert job.params == {"taskId": "t", "audioId": "a"}


# --- paths ------------------------------------------------------------------------------------


def test_relative_sqlite_path_is_resolved_against_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    path = conf_dir / "c.toml"
    path.write_text('[storage]\nurl = "sqlite:///data/jobs.db"\nartifacts_dir = "files"\n')
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = load_settings(path)
    assert settings.database_url == f"sqlite:///{conf_dir / 'data' / 'jobs.db'}"
    assert settings.artifacts_path == conf_dir / "files"


def test_relative_config_path_resolves_base_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    settings = load_settings("sub/c.toml")
    assert settings.base_dir == tmp_path / "sub"
    assert settings.database_url == f"sqlite:///{tmp_path / 'sub' / 'var' / 'orchestrator.db'}"


def test_absolute_artifacts_dir_is_kept(tmp_path: Path) -> None:
    settings = parse({"storage": {"artifacts_dir": str(tmp_path / "abs")}})
    assert settings.artifacts_path == tmp_path / "abs"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////var/lib/orch/jobs.db",
        "sqlite:///:memory:",
        "sqlite://",
        "postgresql+psycopg://user@db.example:5432/orch",
        "postgresql://u:p@h/d",
    ],
)
def test_absolute_memory_and_postgres_urls_are_untouched(url: str) -> None:
    assert resolve_db_url(url, Path("/somewhere/else")) == url
    assert parse({"storage": {"url": url}}).database_url == url


def test_relative_sqlite_url(tmp_path: Path) -> None:
    assert resolve_db_url("sqlite:///x/y.db", tmp_path) == f"sqlite:///{tmp_path / 'x' / 'y.db'}"


# --- secrets and policy -----------------------------------------------------------------------


def test_api_key_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "  real-key-123  ")
    settings = parse({"provider": {"api_key_env": "MY_KEY", "base_url": "https://api.x.org"}})
    assert settings.api_key() == "real-key-123"


@pytest.mark.parametrize(
    "base_url", ["http://127.0.0.1:8900", "http://localhost:8900", "http://[::1]:8900"]
)
def test_api_key_loopback_falls_back_to_sandbox_key(base_url: str) -> None:
    assert parse({"provider": {"base_url": base_url}}).api_key() == SANDBOX_KEY


def test_api_key_env_wins_over_loopback_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUNO_API_KEY", "from-env")
    assert parse({}).api_key() == "from-env"


@pytest.mark.parametrize("value", [None, "", "   "])
def test_api_key_missing_for_a_real_upstream(
    value: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTHER_KEY", "sk-do-not-show-me")
    if value is not None:
        monkeypatch.setenv("SUNO_API_KEY", value)
    settings = parse({"provider": {"base_url": "https://api.sunoapi.org"}})
    with pytest.raises(ConfigError) as info:
        settings.api_key()
    message = str(info.value)
    assert "SUNO_API_KEY" in message
    assert "sk-do-not-show-me" not in message
    assert SANDBOX_KEY not in message


def test_policy_carries_the_settings() -> None:
    settings = parse(
        {
            "polling": {"interval_s": 11, "jitter": 0.2, "deadline_s": 99, "confirm_delay_s": 3},
            "submit": {"max_attempts": 3, "uncertain_policy": "fail", "uncertain_grace_s": 7},
            "downloads": {"max_attempts": 2, "backoff_max_s": 50},
        }
    )
    policy = settings.policy()
    assert isinstance(policy, Policy)
    assert policy.poll_interval_s == 11.0
    assert policy.poll_jitter == 0.2
    assert policy.deadline_s == 99.0
    assert policy.confirm_delay_s == 3.0
    assert policy.submit_max_attempts == 3
    assert policy.uncertain_policy == "fail"
    assert policy.uncertain_grace_s == 7.0
    assert policy.download_max_attempts == 2
    assert policy.download_backoff_max_s == 50.0


def test_default_policy_matches_machine_defaults() -> None:
    assert Settings().policy() == Policy()


def test_settings_are_frozen() -> None:
    settings = parse({})
    with pytest.raises(AttributeError):
        settings.polling.interval_s = 1.0  # type: ignore[misc]


def test_module_sections_match_this_test() -> None:
    """If a section is added to the code, this file's SECTIONS table must learn it."""
    assert dict(config_module._SECTIONS) == SECTIONS


_ODD_VALUES: list[object] = [True, 0, -1, 1.5, float("nan"), "", "x", [], ["x"], [1], {}, {"a": 1}]


@pytest.mark.parametrize("section", list(SECTIONS))
def test_any_odd_value_is_accepted_or_a_config_error(section: str) -> None:
    """No option, given a value of the wrong shape, raises anything but ConfigError."""
    for f in fields(SECTIONS[section]):
        for value in _ODD_VALUES:
            with contextlib.suppress(ConfigError):
                parse({section: {f.name: value}})


def test_repo_config_commented_pipeline_is_valid_once_uncommented(tmp_path: Path) -> None:
    lines = REPO_CONFIG.read_text().splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("# [[jobs]]"))
    uncommented = [
        line[2:] if n >= start and line.startswith("# ") else line for n, line in enumerate(lines)
    ]
    path = tmp_path / "config.toml"
    path.write_text("\n".join(line for line in uncommented if line != "#") + "\n")
    jobs = {job.key: job for job in load_settings(path).jobs}
    assert jobs["first-song-video"].after == ("first-song",)
    assert jobs["first-song-video"].for_each == "first-song.tracks"
    assert jobs["first-song-wav"].kind == "wav"


@pytest.mark.parametrize(
    ("jobs", "message"),
    [
        ('after = ["song", "wav"]', "a job cannot wait for itself"),
        ("after = 3", "after must be a job key or a list of job keys"),
        ("for_each = 1", "for_each must be a string"),
        ('params = { taskId = "t", audioId = "${song.tracks[0].size}" }', "no field 'size'"),
    ],
)
def test_a_bad_pipeline_in_the_config_is_a_clear_error(
    tmp_path: Path, jobs: str, message: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[[jobs]]\nkey = "song"\nkind = "generate_music"\n'
        'params = { customMode = false, instrumental = false, model = "V4_5", prompt = "p" }\n'
        '[[jobs]]\nkey = "wav"\nkind = "wav"\n'
        + ("" if jobs.startswith("after =") else 'after = "song"\n')
        + jobs
        + ("\n" if jobs.startswith("params") else '\nparams = { taskId = "t", audioId = "a" }\n')
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert message in str(caught.value)


def test_a_parent_neither_in_the_config_nor_recorded_is_refused_at_run() -> None:
    from orchestrator.pipelines import PipelineError, Spec
    from orchestrator.service import JobService
    from orchestrator.stores.memory import MemoryStore

    service = JobService(MemoryStore(), provider="sunoapi")
    spec = Spec("wav", "wav", {"taskId": "${nope.task_id}", "audioId": "a"}, ("nope",))
    with pytest.raises(PipelineError, match="after names 'nope', which is no known job"):
        service.submit_all([spec])
    assert service.list() == []  # nothing of the batch was recorded


NOTIFY_OK = '[[notify]]\nname = "app"\nurl = "https://app.example/hooks"\nsecret_env = "S"\n'


def test_notify_targets_are_read_with_their_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        NOTIFY_OK + '[[notify]]\ncommand = ["/usr/local/bin/on-job", "--flag"]\n'
        'events = ["job.completed", "job.progress"]\nkinds = ["wav"]\n'
    )
    app, local = load_settings(path).notify
    assert app.name == "app" and app.url == "https://app.example/hooks" and app.secret_env == "S"
    assert app.events == ("job.completed", "job.failed", "job.timed_out", "job.uncertain")
    assert app.schedule_s[:3] == (0.0, 5.0, 300.0)
    assert local.name == "notify2" and local.command == ("/usr/local/bin/on-job", "--flag")
    assert local.kinds == ("wav",) and local.secret_env == ""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[notify]]\nname = "a"\n', "give url or command"),
        ('[[notify]]\nurl = "ftp://x"\nsecret_env = "S"\n', "must be an http(s) URL"),
        ('[[notify]]\nurl = "https://x"\n', "secret_env: name the environment variable"),
        ('[[notify]]\nurl = "https://x"\nsecret = "whsec_abc"\n', "unknown key(s) secret"),
        (NOTIFY_OK.replace('"S"', '"S"\nevents = ["job.exploded"]'), "events: a list of"),
        (NOTIFY_OK.replace('"S"', '"S"\nkinds = ["karaoke"]'), "kinds: a list of"),
        (NOTIFY_OK.replace('"S"', '"S"\nretry_schedule_s = [-1]'), "retry_schedule_s"),
        (NOTIFY_OK + NOTIFY_OK, "duplicate name 'app'"),
        ('[[notify]]\ncommand = "on-job"\n', "command: must be a list of strings"),
    ],
)
def test_a_bad_notify_target_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert message in str(caught.value)


def test_the_packaged_config_template_is_the_repository_s_config() -> None:
    template = REPO_ROOT / "orchestrator" / "cli" / "config_template.toml"
    assert template.read_text() == REPO_CONFIG.read_text(), "cp config.toml orchestrator/cli/"
