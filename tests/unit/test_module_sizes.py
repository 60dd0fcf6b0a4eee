"""No module in the package grows past 400 lines unless it has one job that says why here."""

from __future__ import annotations

from pathlib import Path

import mailroom

PACKAGE = Path(mailroom.__file__).parent
LIMIT = 400

# Modules allowed past the limit, each with the one job that keeps it whole.
ONE_JOB: dict[str, str] = {
    "mailroom/outbox/schema.py": "every table of the one migration chain, in one MetaData "
    "that Alembic's comparison with the migrations reads whole",
    "mailroom/errors.py": "every exception, and only exceptions: the whole tree read in one place",
}


def test_no_module_is_over_the_limit_without_a_reason() -> None:
    sizes = {
        str(path.relative_to(PACKAGE.parent)): len(path.read_text(encoding="utf-8").splitlines())
        for path in PACKAGE.rglob("*.py")
    }
    over = {name: lines for name, lines in sizes.items() if lines > LIMIT and name not in ONE_JOB}
    assert not over, f"modules over {LIMIT} lines: {over}"
    stale = [name for name in ONE_JOB if sizes.get(name, 0) <= LIMIT]
    assert not stale, f"allowed past the limit but no longer over it: {stale}"
