"""Every settings test passes ``environ=`` explicitly and runs in an empty working directory, so
neither the real environment nor a ``mailroom.toml`` lying around can leak in."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.settings_checks import WriteFile


@pytest.fixture(autouse=True)
def _empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test in an empty directory, so ./mailroom.toml discovery is under our control."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def write(tmp_path: Path) -> WriteFile:
    """Write a file under tmp_path and return its path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return _write
