"""The environment variables the bot's settings read, derived from `Settings` itself."""

from __future__ import annotations

import pytest
from pydantic import AliasChoices, AliasPath
from pydantic.fields import FieldInfo

from bot.config import Settings


def _alias_names(alias: str | AliasPath | AliasChoices | None) -> list[str]:
    """The top-level names an alias (or a choice of aliases) may be given under."""
    if alias is None:
        return []
    if isinstance(alias, str):
        return [alias]
    if isinstance(alias, AliasPath):
        return [str(alias.path[0])]
    return [name for choice in alias.choices for name in _alias_names(choice)]


def env_names(name: str, field: FieldInfo) -> list[str]:
    """Every variable pydantic-settings reads `field` from: its validation alias or alias
    if it has one, else the prefixed field name; upper-cased unless case matters.
    """
    config = Settings.model_config
    names = _alias_names(field.validation_alias) or _alias_names(field.alias)
    if not names:
        names = [f"{config.get('env_prefix', '')}{name}"]
    if config.get("case_sensitive", False):
        return names
    return [variable.upper() for variable in names]


def settings_variables() -> tuple[str, ...]:
    """Every environment variable a `Settings` field can be read from, in field order."""
    return tuple(variable for name, field in Settings.model_fields.items()
                 for variable in env_names(name, field))


def reset_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset every settings variable for the rest of the test (monkeypatch restores them)."""
    for variable in settings_variables():
        monkeypatch.delenv(variable, raising=False)
