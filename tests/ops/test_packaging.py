"""pyproject.toml's packaging metadata: what setuptools will keep accepting, from a build
backend whose range is pinned."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())


def test_the_licence_is_an_spdx_expression() -> None:
    # A TOML table ({ text = ... }) is deprecated, and setuptools refuses it from 2027-02-18.
    licence = PYPROJECT["project"]["license"]
    assert isinstance(licence, str)
    assert re.fullmatch(r"LicenseRef-[A-Za-z0-9.\-]+", licence)
    assert not any(c.startswith("License ::") for c in PYPROJECT["project"].get("classifiers", []))


def test_the_build_backend_range_is_pinned() -> None:
    [setuptools] = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]
                    if Requirement(r).name == "setuptools"]
    # 77.0.3 is the first release that reads a licence expression (PEP 639) reliably.
    assert not setuptools.specifier.contains(Version("77.0.2"))
    assert setuptools.specifier.contains(Version("77.0.3"))
    assert not setuptools.specifier.contains(Version("999"))  # no open-ended range
