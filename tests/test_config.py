"""bot/config.py: settings from the environment and `.env`, with every problem reported at once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic_settings import EnvSettingsSource

from bot.config import (
    DEFAULT_CDE_API_URL,
    DEFAULT_SLACK_API_URL,
    LINK_PLACEHOLDERS,
    ConfigError,
    Settings,
    load_settings,
)
from tests.helpers.environment import reset_environment, settings_variables

BOT_TOKEN = "xoxb-1111-2222-BOTSECRETvalue"
SIGNING_SECRET = "signing-SECRET-8f3a9c"
APP_TOKEN = "xapp-1-A0001-APPSECRETvalue"
CDE_TOKEN = "cde-TOKEN-SECRET-77e1"
SECRETS = (BOT_TOKEN, SIGNING_SECRET, APP_TOKEN, CDE_TOKEN)


@pytest.fixture
def http_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The least an HTTP-mode bot needs."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    monkeypatch.setenv("CDE_API_TOKEN", CDE_TOKEN)
    return monkeypatch


@pytest.fixture
def socket_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The least a Socket Mode bot needs."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_APP_TOKEN", APP_TOKEN)
    monkeypatch.setenv("CDE_API_TOKEN", CDE_TOKEN)
    return monkeypatch


def config_error(**overrides: object) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(**overrides)
    message = str(caught.value)
    assert message.startswith("cde-bot cannot start")
    return message


def problem_lines(message: str) -> dict[str, str]:
    """`  - NAME: problem` lines as NAME -> problem."""
    lines = {}
    for line in message.splitlines()[1:]:
        assert line.startswith("  - "), line
        name, _, problem = line[4:].partition(": ")
        lines[name] = problem
    return lines


# ---------------------------------------------------------------------------------- defaults


def test_defaults_in_http_mode(http_env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert str(settings.cde_api_url).rstrip("/") == DEFAULT_CDE_API_URL == "https://cde.productsup.com"
    assert str(settings.slack_api_url) == DEFAULT_SLACK_API_URL == "https://slack.com/api/"
    assert settings.port == 3000
    assert settings.cde_poll_interval == 60
    assert settings.log_level == "INFO"
    assert settings.cde_web_url_template is None
    assert settings.slack_app_token is None
    assert settings.socket_mode is False
    assert settings.slack_bot_token.get_secret_value() == BOT_TOKEN
    assert settings.slack_signing_secret is not None
    assert settings.slack_signing_secret.get_secret_value() == SIGNING_SECRET
    assert settings.cde_api_token.get_secret_value() == CDE_TOKEN


def test_socket_mode_needs_no_signing_secret(socket_env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.socket_mode is True
    assert settings.slack_signing_secret is None
    assert settings.slack_app_token is not None
    assert settings.slack_app_token.get_secret_value() == APP_TOKEN


def test_both_tokens_mean_socket_mode(http_env: pytest.MonkeyPatch) -> None:
    http_env.setenv("SLACK_APP_TOKEN", APP_TOKEN)
    assert load_settings().socket_mode is True


def test_every_setting_from_the_environment(socket_env: pytest.MonkeyPatch) -> None:
    socket_env.setenv("CDE_API_URL", "https://cde.staging.productsup.com")
    socket_env.setenv("SLACK_API_URL", "http://127.0.0.1:8080/api/")
    socket_env.setenv("PORT", "8080")
    socket_env.setenv("CDE_POLL_INTERVAL", "5")
    socket_env.setenv("LOG_LEVEL", "debug")
    socket_env.setenv("DATABASE_URL", "sqlite+aiosqlite:////tmp/x.db")
    socket_env.setenv("CDE_WEB_URL_TEMPLATE", "https://cde.example.com/sites/{site_id}/runs/{run_id}")
    settings = load_settings()
    assert str(settings.cde_api_url).startswith("https://cde.staging.productsup.com")
    assert str(settings.slack_api_url) == "http://127.0.0.1:8080/api/"
    assert settings.port == 8080
    assert settings.cde_poll_interval == 5
    assert settings.log_level == "DEBUG"
    assert settings.database_url == "sqlite+aiosqlite:////tmp/x.db"
    assert settings.cde_web_url_template == "https://cde.example.com/sites/{site_id}/runs/{run_id}"


def test_overrides_win_over_the_environment(http_env: pytest.MonkeyPatch) -> None:
    http_env.setenv("PORT", "8080")
    assert load_settings(port=9090).port == 9090


def test_secrets_lists_the_configured_secret_values(http_env: pytest.MonkeyPatch) -> None:
    assert sorted(load_settings().secrets()) == sorted([BOT_TOKEN, SIGNING_SECRET, CDE_TOKEN])
    http_env.setenv("SLACK_APP_TOKEN", APP_TOKEN)
    assert sorted(load_settings().secrets()) == sorted(SECRETS)


def test_settings_are_frozen(http_env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.port = 1  # type: ignore[misc]


# ---------------------------------------------------------------------------------- problems


def test_nothing_set_lists_every_missing_setting() -> None:
    problems = problem_lines(config_error())
    assert set(problems) == {"SLACK_BOT_TOKEN", "CDE_API_TOKEN", "SLACK_SIGNING_SECRET"}
    assert problems["SLACK_BOT_TOKEN"].startswith("is not set")
    assert problems["CDE_API_TOKEN"].startswith("is not set")
    assert "SLACK_APP_TOKEN" in problems["SLACK_SIGNING_SECRET"]
    for problem in problems.values():
        assert "(expected " in problem


def test_every_problem_at_once_without_the_secret_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxp-USER-token-SECRET-123")
    monkeypatch.setenv("PORT", "70000")
    monkeypatch.setenv("CDE_POLL_INTERVAL", "0.5")
    monkeypatch.setenv("LOG_LEVEL", "verbose")
    monkeypatch.setenv("CDE_API_URL", "not a url")
    message = config_error()
    problems = problem_lines(message)
    assert set(problems) == {"SLACK_BOT_TOKEN", "CDE_API_TOKEN", "PORT", "CDE_POLL_INTERVAL", "LOG_LEVEL",
                             "CDE_API_URL", "SLACK_SIGNING_SECRET"}
    assert "xoxb-" in problems["SLACK_BOT_TOKEN"]
    assert "is not set" in problems["CDE_API_TOKEN"]
    assert "65535" in problems["PORT"]
    assert "at least 1" in problems["CDE_POLL_INTERVAL"]
    assert "DEBUG" in problems["LOG_LEVEL"]
    assert "https://cde.productsup.com" in problems["CDE_API_URL"]
    assert "HTTP mode" in problems["SLACK_SIGNING_SECRET"]
    assert "xoxp-USER-token-SECRET-123" not in message
    assert "SECRET-123" not in message
    assert "not a url" not in message
    assert "verbose" not in message


def test_bad_token_prefixes_never_show_the_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", APP_TOKEN)
    monkeypatch.setenv("SLACK_APP_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    monkeypatch.setenv("CDE_API_TOKEN", CDE_TOKEN)
    message = config_error()
    problems = problem_lines(message)
    assert set(problems) == {"SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"}
    assert "'xoxb-'" in problems["SLACK_BOT_TOKEN"]
    assert "'xapp-'" in problems["SLACK_APP_TOKEN"]
    for secret in SECRETS:
        assert secret not in message
        assert secret.split("-")[-1] not in message


def test_a_bad_port_is_reported_with_the_tokens_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "http")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    problems = problem_lines(config_error())
    assert set(problems) == {"SLACK_BOT_TOKEN", "CDE_API_TOKEN", "PORT"}
    assert "integer" in problems["PORT"]
    assert "1 to 65535" in problems["PORT"]


@pytest.mark.parametrize("port", ["0", "-1", "65536", "3000.5", ""])
def test_invalid_ports(http_env: pytest.MonkeyPatch, port: str) -> None:
    http_env.setenv("PORT", port)
    assert "PORT" in problem_lines(config_error())


@pytest.mark.parametrize("port", ["1", "65535"])
def test_port_bounds(http_env: pytest.MonkeyPatch, port: str) -> None:
    http_env.setenv("PORT", port)
    assert load_settings().port == int(port)


def test_signing_secret_missing_in_http_mode_is_the_only_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("CDE_API_TOKEN", CDE_TOKEN)
    message = config_error()
    problems = problem_lines(message)
    assert set(problems) == {"SLACK_SIGNING_SECRET"}
    assert "Signing Secret" in problems["SLACK_SIGNING_SECRET"]
    assert BOT_TOKEN not in message
    assert CDE_TOKEN not in message


@pytest.mark.parametrize("blank", ["", "   ", "\t"])
def test_a_blank_signing_secret_is_not_set(monkeypatch: pytest.MonkeyPatch, blank: str) -> None:
    # White space alone must not pass for a secret: HTTP mode would run unverifiable.
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("CDE_API_TOKEN", CDE_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", blank)
    assert "SLACK_SIGNING_SECRET" in problem_lines(config_error())


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_app_token_means_http_mode(http_env: pytest.MonkeyPatch, blank: str) -> None:
    http_env.setenv("SLACK_APP_TOKEN", blank)
    settings = load_settings()
    assert settings.slack_app_token is None
    assert settings.socket_mode is False


def test_a_blank_app_token_without_signing_secret_is_reported(socket_env: pytest.MonkeyPatch) -> None:
    socket_env.setenv("SLACK_APP_TOKEN", "   ")
    assert "SLACK_SIGNING_SECRET" in problem_lines(config_error())


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_cde_token_is_reported(http_env: pytest.MonkeyPatch, blank: str) -> None:
    http_env.setenv("CDE_API_TOKEN", blank)
    problems = problem_lines(config_error())
    assert set(problems) == {"CDE_API_TOKEN"}
    assert "must not be empty" in problems["CDE_API_TOKEN"]


def test_settings_can_be_built_directly_and_raise_validation_errors() -> None:
    settings = Settings(slack_bot_token=BOT_TOKEN, slack_app_token=APP_TOKEN, cde_api_token=CDE_TOKEN,
                        _env_file=None)  # type: ignore[call-arg]
    assert settings.socket_mode
    with pytest.raises(ValueError, match="slack_signing_secret"):
        Settings(slack_bot_token=BOT_TOKEN, cde_api_token=CDE_TOKEN, _env_file=None)  # type: ignore[call-arg]


# ------------------------------------------------------------------------------- .env file


def test_a_dotenv_file_in_the_working_directory_is_read(tmp_path: Path) -> None:
    assert Path.cwd() == tmp_path
    (tmp_path / ".env").write_text(
        f"SLACK_BOT_TOKEN={BOT_TOKEN}\nSLACK_APP_TOKEN={APP_TOKEN}\nCDE_API_TOKEN={CDE_TOKEN}\nPORT=4000\n"
        "# a comment\nCDE_API_URL=https://cde.staging.productsup.com\n",
        encoding="utf-8",
    )
    settings = load_settings()
    assert settings.socket_mode
    assert settings.port == 4000
    assert settings.cde_api_token.get_secret_value() == CDE_TOKEN
    assert str(settings.cde_api_url).startswith("https://cde.staging.productsup.com")


def test_the_environment_wins_over_dotenv(tmp_path: Path, socket_env: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("PORT=4000\nLOG_LEVEL=ERROR\n", encoding="utf-8")
    socket_env.setenv("PORT", "5000")
    settings = load_settings()
    assert settings.port == 5000
    assert settings.log_level == "ERROR"


def test_an_empty_value_in_dotenv_means_unset(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        f"SLACK_BOT_TOKEN={BOT_TOKEN}\nSLACK_APP_TOKEN=\nSLACK_SIGNING_SECRET={SIGNING_SECRET}\n"
        f"CDE_API_TOKEN={CDE_TOKEN}\nCDE_WEB_URL_TEMPLATE=\n",
        encoding="utf-8",
    )
    settings = load_settings()
    assert settings.socket_mode is False
    assert settings.cde_web_url_template is None


def test_problems_in_dotenv_are_reported_without_values(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"SLACK_BOT_TOKEN=not-a-bot-{CDE_TOKEN}\nPORT=x\n", encoding="utf-8")
    message = config_error()
    assert {"SLACK_BOT_TOKEN", "PORT", "CDE_API_TOKEN", "SLACK_SIGNING_SECRET"} == set(problem_lines(message))
    assert CDE_TOKEN not in message


def test_no_dotenv_file_is_read_when_disabled(tmp_path: Path, socket_env: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("PORT=4000\n", encoding="utf-8")
    assert Settings(_env_file=None).port == 3000  # type: ignore[call-arg]


# ---------------------------------------------------------------------------- secrecy


def test_repr_and_str_do_not_show_secrets(http_env: pytest.MonkeyPatch) -> None:
    http_env.setenv("SLACK_APP_TOKEN", APP_TOKEN)
    settings = load_settings()
    for shown in (repr(settings), str(settings), f"{settings}", settings.model_dump_json()):
        for secret in SECRETS:
            assert secret not in shown
    assert "**********" in repr(settings)


# ---------------------------------------------------------------------------- web links


@pytest.mark.parametrize(
    "template",
    [
        "https://cde.example.com/runs/{run_id}",
        "http://localhost:8000/s/{site_id}/c/{connector_id}/p/{process_id}?project={project_id}&a={account_id}",
        "https://cde.example.com/static",
        "https://cde.example.com/{{literal}}/{run_id}",
    ],
)
def test_valid_web_url_templates(socket_env: pytest.MonkeyPatch, template: str) -> None:
    socket_env.setenv("CDE_WEB_URL_TEMPLATE", template)
    assert load_settings().cde_web_url_template == template


def test_every_placeholder_is_allowed(socket_env: pytest.MonkeyPatch) -> None:
    template = "https://x.test/" + "/".join(f"{{{name}}}" for name in LINK_PLACEHOLDERS)
    socket_env.setenv("CDE_WEB_URL_TEMPLATE", template)
    assert load_settings().cde_web_url_template == template


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ("https://cde.example.com/runs/{id}", "'id'"),
        ("https://cde.example.com/runs/{run}", "'run'"),
        ("https://cde.example.com/runs/{0}", "placeholder"),
        ("https://cde.example.com/runs/{}", "placeholder"),
        ("https://cde.example.com/runs/{run_id", "placeholder"),
        ("https://cde.example.com/runs/run_id}", "placeholder"),
        ("https://cde.example.com/runs/{run_id!z}", "placeholder"),
        ("https://cde.example.com/runs/{run_id:d}", "placeholder"),
        ("https://cde.example.com/runs/{run_id.no_such_attribute}", "placeholder"),
        ("https://cde.example.com/runs/{run_id[key]}", "placeholder"),
        ("https://cde.example.com/runs/{run_id[9]}", "placeholder"),
        ("cde.example.com/runs/{run_id}", "https://"),
        ("ftp://cde.example.com/runs/{run_id}", "https://"),
    ],
)
def test_invalid_web_url_templates_are_config_errors(
    socket_env: pytest.MonkeyPatch, template: str, words: str
) -> None:
    socket_env.setenv("CDE_WEB_URL_TEMPLATE", template)
    problems = problem_lines(config_error())
    assert set(problems) == {"CDE_WEB_URL_TEMPLATE"}
    assert words in problems["CDE_WEB_URL_TEMPLATE"]
    for name in LINK_PLACEHOLDERS:
        assert name in problems["CDE_WEB_URL_TEMPLATE"]


# ---------------------------------------------------------------------------------- secret values


def test_secrets_from_files_lose_their_trailing_newline(http_env: pytest.MonkeyPatch) -> None:
    http_env.setenv("CDE_API_TOKEN", CDE_TOKEN + "\n")
    http_env.setenv("SLACK_BOT_TOKEN", f"  {BOT_TOKEN}\r\n")
    settings = load_settings()
    assert settings.cde_api_token.get_secret_value() == CDE_TOKEN
    assert settings.slack_bot_token.get_secret_value() == BOT_TOKEN


@pytest.mark.parametrize("bad", [f"{CDE_TOKEN[:6]} {CDE_TOKEN[6:]}", f"{CDE_TOKEN}\x07x", f"{CDE_TOKEN}é"])
def test_secrets_with_inner_spaces_control_or_non_ascii_are_refused(http_env: pytest.MonkeyPatch,
                                                                     bad: str) -> None:
    http_env.setenv("CDE_API_TOKEN", bad)
    message = config_error()
    assert "CDE_API_TOKEN" in problem_lines(message)
    assert "control or non-ASCII" in problem_lines(message)["CDE_API_TOKEN"]
    assert CDE_TOKEN[6:] not in message and bad not in message


def test_every_setting_describes_what_it_expects() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} has no description"


def test_a_database_password_is_secret_escaped_and_unescaped(http_env: pytest.MonkeyPatch) -> None:
    http_env.setenv("DATABASE_URL", "postgresql+asyncpg://bot:pass%40word-1@db/cde")
    secrets = load_settings().secrets()
    assert "pass%40word-1" in secrets and "pass@word-1" in secrets


# -- the tests' own environment reset ---------------------------------------------------------


def test_the_reset_names_every_variable_the_settings_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # pydantic-settings' own environment source finds every field from the derived names.
    monkeypatch.setattr(os, "environ", {name: "x" for name in settings_variables()})
    found = EnvSettingsSource(Settings)()
    assert set(found) == set(Settings.model_fields)


def test_the_reset_clears_a_stray_setting_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in settings_variables():
        monkeypatch.setenv(name, "junk")
    reset_environment(monkeypatch)
    settings = load_settings(slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET,
                             cde_api_token=CDE_TOKEN)
    assert settings.notice_digest_threshold == Settings.model_fields["notice_digest_threshold"].default
    assert settings.cde_lookback_hours == Settings.model_fields["cde_lookback_hours"].default
    assert not [name for name in settings_variables() if name in os.environ]


# -- who may do what: CDE_ADMINS, CDE_ALLOWED_CHANNELS, CDE_ALLOWED_SITES ------------------------


def test_access_settings_unset_mean_no_bounds(http_env: pytest.MonkeyPatch) -> None:
    http_env.setenv("CDE_ADMINS", "")
    settings = load_settings()
    assert (settings.cde_admins, settings.cde_allowed_channels, settings.cde_allowed_sites) == ((), (), ())


def test_access_settings_are_comma_separated_ids(http_env: pytest.MonkeyPatch) -> None:
    http_env.setenv("CDE_ADMINS", " U0ALICE1, S0ONCALL ,W0BOB123,U0ALICE1,")
    http_env.setenv("CDE_ALLOWED_CHANNELS", "C0OPS,G0PRIVATE,D0DM")
    http_env.setenv("CDE_ALLOWED_SITES", "1001, 9223372036854775807")
    settings = load_settings()
    assert settings.cde_admins == ("U0ALICE1", "S0ONCALL", "W0BOB123")  # once each, in order
    assert settings.cde_allowed_channels == ("C0OPS", "G0PRIVATE", "D0DM")
    assert settings.cde_allowed_sites == (1001, 2**63 - 1)


def test_every_bad_access_id_is_named_in_one_message(http_env: pytest.MonkeyPatch) -> None:
    http_env.setenv("CDE_ADMINS", "U0ALICE1,@bob,u0lower")
    http_env.setenv("CDE_ALLOWED_CHANNELS", "C0OPS,#general")
    http_env.setenv("CDE_ALLOWED_SITES", "1001,0,-5,9223372036854775808,site")
    http_env.setenv("PORT", "70000")
    problems = problem_lines(config_error())
    assert set(problems) == {"CDE_ADMINS", "CDE_ALLOWED_CHANNELS", "CDE_ALLOWED_SITES", "PORT"}
    assert "'@bob', 'u0lower' are not valid" in problems["CDE_ADMINS"]
    assert "user-group id (S...)" in problems["CDE_ADMINS"]
    assert "U0ALICE1" not in problems["CDE_ADMINS"]
    assert "'#general' is not valid: each must be a Slack channel id" in problems["CDE_ALLOWED_CHANNELS"]
    sites = problems["CDE_ALLOWED_SITES"]
    assert "'0', '-5', '9223372036854775808', 'site' are not valid" in sites
    assert "1001" not in sites.split("valid")[0]


# -- DATABASE_URL -------------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "used"), [
    ("postgresql://bot:pw@db/cde", "postgresql+asyncpg://bot:pw@db/cde"),
    ("postgres://bot:pw@db:5433/cde", "postgresql+asyncpg://bot:pw@db:5433/cde"),
    ("postgres+asyncpg://bot:pw@db/cde", "postgresql+asyncpg://bot:pw@db/cde"),
    ("sqlite:////data/x.db", "sqlite+aiosqlite:////data/x.db"),
    ("postgresql+asyncpg://bot:pw@db/cde", "postgresql+asyncpg://bot:pw@db/cde"),
    ("sqlite+aiosqlite:///cde-bot.db", "sqlite+aiosqlite:///cde-bot.db"),
])
def test_a_database_url_gets_the_async_driver_the_store_runs_on(
        socket_env: pytest.MonkeyPatch, given: str, used: str) -> None:
    socket_env.setenv("DATABASE_URL", given)
    assert load_settings().database_url == used


@pytest.mark.parametrize(("given", "fix"), [
    ("postgresql+psycopg2://bot:hunter2-secret@db/cde", "write postgresql+asyncpg:// instead of postgresql+psycopg2://"),
    ("sqlite+pysqlite:///x.db", "write sqlite+aiosqlite:// instead of sqlite+pysqlite://"),
    ("hunter2-secret@db/cde", "is not a URL"),
])
def test_a_database_url_the_store_cannot_run_on_is_refused_at_start(
        socket_env: pytest.MonkeyPatch, given: str, fix: str) -> None:
    socket_env.setenv("DATABASE_URL", given)
    message = config_error()
    [line] = [line for line in message.splitlines() if "DATABASE_URL" in line]
    assert fix in line
    assert "hunter2" not in message


def test_the_poll_budget_for_failed_runs_is_a_setting(http_env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert (settings.cde_poll_max_requests, settings.cde_scan_max_pages) == (10, 200)
    http_env.setenv("CDE_POLL_MAX_REQUESTS", "25")
    assert load_settings().cde_poll_max_requests == 25
    # Fewer than 3 leaves the sweep of the window no request beside the head.
    http_env.setenv("CDE_POLL_MAX_REQUESTS", "2")
    assert "CDE_POLL_MAX_REQUESTS" in problem_lines(config_error())
