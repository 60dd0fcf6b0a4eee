"""Dependency floors that close known vulnerabilities: declared, and what is installed.

A floor in pyproject.toml is what a fresh install may get; a test of the escape itself passes
on any fixed release, so the floor needs a check of its own.
"""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"

# package -> the first release without the advisory, and the advisory
FLOORS = {
    "jinja2": ("3.1.6", "CVE-2025-27516: |attr('format') reached the sandbox's globals"),
    "aiosmtplib": ("5.1.3", "CR/LF in addresses injected SMTP commands"),
    "starlette": ("1.6.0", "CVE-2026-48710, CVE-2026-54282/54283: Host header, path checks"),
    "python-multipart": ("0.0.32", "CVE-2026-53538/53539/53540: multipart denial of service"),
    "h11": ("0.16.0", "CVE-2025-43859: request smuggling through chunked bodies"),
}


def declared() -> dict[str, Requirement]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    requirements = [Requirement(spec) for spec in project["dependencies"]]
    return {requirement.name.lower(): requirement for requirement in requirements}


def _release_before(fixed: Version) -> Version:
    """A release just before ``fixed``: 5.1.3 → 5.1.2, 0.16.0 → 0.15.999, 1.0.0 → 0.999.999."""
    release = list(fixed.release)
    for position in range(len(release) - 1, -1, -1):
        if release[position] > 0:
            release[position] -= 1
            release[position + 1 :] = [999] * (len(release) - position - 1)
            return Version(".".join(map(str, release)))
    raise ValueError(f"no release before {fixed}")


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_the_declared_floor_excludes_vulnerable_releases(package: str) -> None:
    fixed, advisory = FLOORS[package]
    specifier = declared()[package].specifier
    before = _release_before(Version(fixed))
    assert not specifier.contains(before), f"{package}{specifier} admits {before}: {advisory}"
    assert specifier.contains(fixed)


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_the_installed_release_is_fixed(package: str) -> None:
    fixed, advisory = FLOORS[package]
    assert Version(version(package)) >= Version(fixed), advisory
