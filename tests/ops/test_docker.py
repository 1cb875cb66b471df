"""The Docker build, read without Docker: what `.dockerignore` leaves in the build context
(by Docker's own matching rules, re-implemented below), the Dockerfile's layers and pinned
base image, the example compose.yaml and compose.postgres.yaml.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What the image is built from; nothing else belongs in the build context.
NEEDED = ("pyproject.toml", "README.md", "bot/")


def _regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as Docker (moby's patternmatcher) reads it: relative to the
    context root, `*` and `?` within one path segment, `**` across any number of them.
    """
    pattern = pattern.strip().strip("/")
    out, i = "", 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif char == "*":
            out, i = out + "[^/]*", i + 1
        elif char == "?":
            out, i = out + "[^/]", i + 1
        elif char == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i:end + 1], end + 1
        elif char == "\\":
            out, i = out + re.escape(pattern[i + 1]), i + 2
        else:
            out, i = out + re.escape(char), i + 1
    return re.compile(f"^{out}$")


@cache
def _rules() -> tuple[tuple[bool, re.Pattern[str]], ...]:
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        rules.append((exception, _regex(line.removeprefix("!"))))
    return tuple(rules)


def ignored(path: str) -> bool:
    """Whether Docker leaves `path` (relative, `/`-separated) out: the last rule matching it
    or one of its parent directories decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    verdict = False
    for exception, rule in _rules():
        if any(rule.match(candidate) for candidate in candidates):
            verdict = not exception
    return verdict


def context_of(root: Path) -> list[str]:
    """Every file under `root` that a build context would hold."""
    return sorted(path for file in root.rglob("*") if file.is_file()
                  if not ignored(path := file.relative_to(root).as_posix()))


@pytest.mark.parametrize("path", [
    ".env", "deploy/.env", ".env.production", "cde-bot.db", "data/cde-bot.db", "cde-bot.db-wal",
    "state.sqlite3", ".venv/bin/python", ".git/HEAD", ".git", "bot/__pycache__/server.cpython-311.pyc",
    "bot/server.pyc", "cde_bot.egg-info/PKG-INFO", "build/lib/bot/x.py", "dist/cde_bot.whl",
    ".pytest_cache/v/x", ".mypy_cache/3.11/x.json", "tests/test_cli.py", "bench/run.py",
])
def test_secrets_state_and_tooling_stay_out_of_the_context(path: str) -> None:
    assert ignored(path)


@pytest.mark.parametrize("path", [
    "pyproject.toml", "README.md", "bot/__init__.py", "bot/ops/check.py", "bot/demo/reference_runs.json",
])
def test_what_the_image_is_built_from_is_in_the_context(path: str) -> None:
    assert not ignored(path)


def test_the_matcher_follows_dockers_rules() -> None:
    assert _regex("*.db").match("x.db") and not _regex("*.db").match("data/x.db")
    assert _regex("**/*.db").match("data/deep/x.db") and _regex("**/*.db").match("x.db")
    assert _regex(".venv").match(".venv") and not _regex(".venv").match("a/.venv")


def test_a_build_context_of_a_working_tree_holds_only_what_the_image_needs(tmp_path: Path) -> None:
    # A working tree as a developer has it: tracked files, plus secrets, state and caches.
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    for name in [*tracked, ".env", "cde-bot.db", "cde-bot.db-wal", ".venv/bin/python",
                 ".git/HEAD", "bot/__pycache__/app.cpython-311.pyc"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    context = context_of(tmp_path)
    assert context, "nothing left to build from"
    assert all(path.startswith(NEEDED) for path in context), [
        path for path in context if not path.startswith(NEEDED)]
    assert {"pyproject.toml", "README.md", "bot/__main__.py", "bot/demo/reference_runs.json"} <= set(context)


# -- the Dockerfile ------------------------------------------------------------------------------


def dockerfile() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_the_base_image_is_pinned_to_an_exact_release() -> None:
    lines = dockerfile()
    [image] = [line.split("=", 1)[1] for line in lines if line.startswith("ARG PYTHON_IMAGE=")]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", image), image
    assert [line for line in lines if line.startswith("FROM")] == [
        "FROM ${PYTHON_IMAGE} AS build", "FROM ${PYTHON_IMAGE}"]


def test_dependencies_are_installed_before_the_code_is_copied() -> None:
    lines = dockerfile()
    build_stage_end = [i for i, line in enumerate(lines) if line.startswith("FROM")][1]
    copy_code = lines.index("COPY bot ./bot")
    [dependencies] = [i for i, line in enumerate(lines[:build_stage_end]) if "-r requirements.txt" in line]
    assert dependencies < copy_code < build_stage_end
    assert all("bot" not in line for line in lines[:dependencies] if line.startswith("COPY"))
    final = lines[build_stage_end:]
    installs = [line for line in final if line.startswith(("COPY", "RUN pip"))]
    assert installs[0].startswith("COPY --from=build /wheels/deps") and "/wheels/app" in installs[-1]


def test_everything_the_dockerfile_copies_is_in_the_context() -> None:
    sources = [line.split()[1] for line in dockerfile() if line.startswith("COPY ") and "--from" not in line]
    assert sources and all(not ignored(source) for source in sources), sources


def test_the_compose_example_keeps_state_in_a_volume() -> None:
    text = (ROOT / "compose.yaml").read_text()
    assert "build: ." in text and "env_file: .env" in text
    assert "- cde-bot-data:/data" in text and re.search(r"^volumes:\n  cde-bot-data:", text, re.M)
    assert "stop_grace_period: 30s" in text


def test_the_image_installs_the_postgres_extra() -> None:
    """The command the build stage writes requirements.txt with, run on pyproject.toml: the
    image can serve several replicas on PostgreSQL, so asyncpg must be in it."""
    [run] = [line for line in dockerfile() if "> requirements.txt" in line]
    command = re.fullmatch(r'RUN python -c "(.+)"\s+> requirements\.txt .*', run)
    assert command, run
    written = subprocess.run([sys.executable, "-c", command.group(1)], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.splitlines()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    postgres = project["optional-dependencies"]["postgres"]
    assert any(requirement.startswith("asyncpg") for requirement in postgres)
    assert set(postgres) <= set(written) and set(project["dependencies"]) <= set(written)
    # Installed from those wheels, with nothing fetched from an index in the final stage.
    assert any("pip wheel" in line and "-r requirements.txt" in line for line in dockerfile())
    assert "RUN pip install --no-index /wheels/deps/*.whl && rm -rf /wheels/deps" in dockerfile()


def test_the_postgres_compose_example_runs_two_replicas_on_one_database() -> None:
    text = (ROOT / "compose.postgres.yaml").read_text()
    services = re.search(r"^services:\n(.*?)^\S", text, re.M | re.S)
    assert services, "no services"
    names = re.findall(r"^  (\w[\w-]*):$", services.group(1), re.M)
    assert names == ["postgres", "bot"]
    postgres, bot = re.split(r"^  bot:$", services.group(1), flags=re.M)
    assert re.search(r"^    image: postgres:\d+", postgres, re.M)
    assert "pg_isready" in postgres and "- cde-bot-postgres:/var/lib/postgresql/data" in postgres
    assert "build: ." in bot and "env_file: .env" in bot
    assert re.search(r"^      replicas: 2$", bot, re.M)
    # Every replica on the same database, the postgres service, through the async driver.
    [url] = re.findall(r"DATABASE_URL: (\S+)", bot)
    assert url == "postgresql+asyncpg://cdebot:${POSTGRES_PASSWORD}@postgres:5432/cdebot"
    assert re.search(r"depends_on:\n\s+postgres:\n\s+condition: service_healthy", bot)
    assert "stop_grace_period: 30s" in bot
    # No SQLite volume: a file per replica would be state split in two.
    assert "/data" not in bot
    assert re.search(r"^volumes:\n  cde-bot-postgres:", text, re.M)
