"""The error catalogue for a broken database: every command, every fault, a short answer.

Each case breaks the database one way (no server, no such database, no driver, a scheme we do
not support, a directory, a corrupt or truncated file, a read-only file system, a read-only
file, a full disk) and runs the real ``mailroom`` commands against it in subprocesses. Each
answer is at most three lines, has no traceback, names ``DATABASE_URL`` and the fix, and
never shows the password, nor any piece of it (the worker's start line included), however it
is written: in the user information, as ``?password=``, with an unencoded ``@`` or ``#``. The
file-system cases mount a small tmpfs (root only; skipped elsewhere). With ``-v`` the same
fault also shows its traceback.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url

from mailroom.config import SETTING_NAMES, load_settings
from mailroom.errors import (
    DatabaseError,
    DatabaseFileError,
    DatabaseUnreachableError,
    SettingsError,
)
from mailroom.message import Message
from mailroom.outbox import database
from mailroom.outbox.store import Outbox

PASSWORD = "s3cret-Pw-9f2"  # a marker that must never be printed

COMMANDS: dict[str, list[str]] = {
    "status": ["status"],
    "send": ["send", "--to", "ada@example.com", "--subject", "Hi", "--text", "hello"],
    "queue list": ["queue", "list"],
    "worker --once": ["worker", "--once"],
    "db upgrade": ["db", "upgrade"],
}
ALL = tuple(COMMANDS)


@dataclass
class Broken:
    """A database broken one way: the environment to run with, and what must be said."""

    env: dict[str, str]
    fix: str
    must_fail: tuple[str, ...] = ALL
    cleanup: list[Callable[[], object]] = field(default_factory=list)
    password: str = PASSWORD


def pieces(secret: str, size: int = 4) -> set[str]:
    """Every run of ``size`` characters of ``secret``: none of them may be shown."""
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_outbox(path: Path, messages: int = 0) -> None:
    settings = load_settings(environ={"DATABASE_URL": f"sqlite:///{path}"})
    outbox = Outbox(settings)
    database.upgrade(outbox.engine)
    for n in range(messages):
        outbox.send(Message(to=[f"u{n}@example.com"], subject="Hi", text="x" * 5000))
    outbox.dispose()  # the last connection closing checkpoints the WAL into the file


def system(*args: str) -> int:
    """Run a system tool (mount, chattr) by its full path; its exit status."""
    tool = shutil.which(args[0])
    if tool is None:
        pytest.skip(f"needs {args[0]}")
    return subprocess.run([tool, *args[1:]], capture_output=True, check=False).returncode


_mounted: list[Path] = []  # unmounted by the fixture, even when a case fails half-way


def mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir()
    if system("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)) != 0:
        pytest.skip("needs root to mount a tmpfs")
    _mounted.append(where)


def pg_refused(_tmp: Path) -> Broken:
    url = f"postgresql://mailroom:{PASSWORD}@127.0.0.1:{closed_port()}/mailroom"
    return Broken({"DATABASE_URL": url}, fix="start the server")


def pg_unknown_host(_tmp: Path) -> Broken:
    url = f"postgresql://mailroom:{PASSWORD}@no-such-host.invalid:5432/mailroom"
    return Broken({"DATABASE_URL": url}, fix="fix the host")


def pg_missing_database(_tmp: Path) -> Broken:
    admin = os.environ.get(
        "MAILROOM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
    )
    url = make_url(admin).set(password=PASSWORD, database="mailroom_no_such_database")
    with socket.socket() as probe:
        probe.settimeout(1)
        if probe.connect_ex((url.host or "127.0.0.1", url.port or 5432)) != 0:
            pytest.skip("PostgreSQL not reachable")
    return Broken(
        {"DATABASE_URL": url.render_as_string(hide_password=False)}, fix="create the database"
    )


def driver_missing(tmp: Path) -> Broken:
    # psycopg made unimportable for the subprocess, as on a machine without the extra.
    shadow = tmp / "shadow" / "psycopg"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        'raise ModuleNotFoundError("No module named \'psycopg\'", name="psycopg")\n'
    )
    url = f"postgresql://mailroom:{PASSWORD}@127.0.0.1:5432/mailroom"
    return Broken(
        {"DATABASE_URL": url, "PYTHONPATH": str(tmp / "shadow")},
        fix="pip install 'mailroom[postgresql]'",
    )


def pg_password_in_the_query(_tmp: Path) -> Broken:
    url = f"postgresql://mailroom@127.0.0.1:{closed_port()}/mailroom?password={PASSWORD}"
    return Broken({"DATABASE_URL": url}, fix="start the server")


# SQLAlchemy (like libpq) ends a password at its first "@": the rest became the host, which
# the driver named in its error ("failed to resolve host 'tPw9qZx@127.0.0.1'").
AT_PASSWORD = "Kq7vX2@tPw9qZx"


def pg_unencoded_at_in_the_password(_tmp: Path) -> Broken:
    url = f"postgresql://mailroom:{AT_PASSWORD}@127.0.0.1:{closed_port()}/mailroom"
    return Broken({"DATABASE_URL": url}, fix="%40", password=AT_PASSWORD)


# SQLAlchemy read "w0rd:Xy9zQ@127.0.0.1:5432" as host and port and raised ValueError quoting
# the port ("invalid literal for int() with base 10: 'Xy9zQ@127.0.0.1:5432'"), from every
# command, as an unexpected error.
PORT_PASSWORD = "Pa55@w0rd:Xy9zQ"
# An "@" followed by "?": SQLAlchemy took "w0rd" for the host, which the driver named.
QUERY_PASSWORD = "Pa55@w0rd?x:Xy9zQ"


def pg_at_sign_then_colon_in_the_password(_tmp: Path) -> Broken:
    url = f"postgresql://mailroom:{PORT_PASSWORD}@127.0.0.1:{closed_port()}/mailroom"
    return Broken({"DATABASE_URL": url}, fix="%40", password=PORT_PASSWORD)


def pg_at_sign_then_question_mark_in_the_password(_tmp: Path) -> Broken:
    url = f"postgresql://mailroom:{QUERY_PASSWORD}@127.0.0.1:{closed_port()}/mailroom"
    return Broken({"DATABASE_URL": url}, fix="%40", password=QUERY_PASSWORD)


HASH_PASSWORD = "Wm4#jRz8Qv"


def pg_hash_in_the_password(_tmp: Path) -> Broken:
    url = f"postgresql://mailroom:{HASH_PASSWORD}@no-such-host.invalid:5432/mailroom"
    return Broken({"DATABASE_URL": url}, fix="fix the host", password=HASH_PASSWORD)


def unsupported_scheme(_tmp: Path) -> Broken:
    url = f"mysql://mailroom:{PASSWORD}@127.0.0.1:3306/mailroom"
    return Broken({"DATABASE_URL": url}, fix="postgresql://")


def directory(tmp: Path) -> Broken:
    (tmp / "outbox").mkdir()
    return Broken({"DATABASE_URL": f"sqlite:///{tmp / 'outbox'}"}, fix="name a file in it")


def missing_folder(tmp: Path) -> Broken:
    return Broken({"DATABASE_URL": f"sqlite:///{tmp / 'no-such-folder' / 'm.db'}"}, fix="create it")


def corrupt_file(tmp: Path) -> Broken:
    (tmp / "mailroom.db").write_bytes(os.urandom(20_000))
    return Broken({"DATABASE_URL": f"sqlite:///{tmp / 'mailroom.db'}"}, fix="restore it")


def truncated_file(tmp: Path) -> Broken:
    path = tmp / "mailroom.db"
    make_outbox(path, messages=20)
    with path.open("r+b") as file:
        file.truncate(8192)
    return Broken({"DATABASE_URL": f"sqlite:///{path}"}, fix="restore it from a backup")


def read_only_file_system(tmp: Path) -> Broken:
    where = tmp / "mnt"
    mount_tmpfs(where, "1m")
    make_outbox(where / "mailroom.db")
    assert system("mount", "-o", "remount,ro", str(where)) == 0
    return Broken(
        {"DATABASE_URL": f"sqlite:///{where / 'mailroom.db'}"},
        fix="remount it read-write",
    )


def read_only_file(tmp: Path) -> Broken:
    path = tmp / "mailroom.db"
    make_outbox(path)
    # Root writes through file modes: make the file immutable instead.
    if system("chattr", "+i", str(path)) != 0:
        pytest.skip("needs root and a file system with the immutable attribute")
    return Broken(
        {"DATABASE_URL": f"sqlite:///{path}"},
        fix="fix the permissions",
        must_fail=("send",),
        cleanup=[lambda: system("chattr", "-i", str(path))],
    )


def full_disk(tmp: Path) -> Broken:
    where = tmp / "mnt"
    mount_tmpfs(where, "1m")  # the schema (migrations to 0013), then the filler takes the rest
    make_outbox(where / "mailroom.db")
    with contextlib.suppress(OSError), (where / "filler").open("wb") as filler:
        while True:  # until ENOSPC: the disk is full
            filler.write(b"\0" * 4096)
            filler.flush()
    return Broken(
        {"DATABASE_URL": f"sqlite:///{where / 'mailroom.db'}"},
        fix="free space",
        must_fail=("send",),
    )


CASES = {
    "postgresql refused": pg_refused,
    "postgresql unknown host": pg_unknown_host,
    "postgresql missing database": pg_missing_database,
    "password in the query": pg_password_in_the_query,
    "unencoded at sign in the password": pg_unencoded_at_in_the_password,
    "hash sign in the password": pg_hash_in_the_password,
    "at sign then colon in the password": pg_at_sign_then_colon_in_the_password,
    "at sign then question mark in the password": pg_at_sign_then_question_mark_in_the_password,
    "driver missing": driver_missing,
    "unsupported scheme": unsupported_scheme,
    "a directory": directory,
    "missing folder": missing_folder,
    "corrupt file": corrupt_file,
    "truncated file": truncated_file,
    "read-only file system": read_only_file_system,
    "read-only file": read_only_file,
    "full disk": full_disk,
}


@pytest.fixture(params=list(CASES))
def broken(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broken]:
    case: Broken | None = None
    try:
        case = CASES[request.param](tmp_path)
        yield case
    finally:
        for undo in case.cleanup if case else ():
            undo()
        while _mounted:
            system("umount", "-l", str(_mounted.pop()))


def clean_environment(extra: dict[str, str]) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in SETTING_NAMES and not key.startswith(("EMAIL_", "MAILROOM_"))
    }
    env.pop("PYTHONPATH", None)
    return {**env, **extra}


def test_each_database_fault_is_one_short_error_naming_the_setting_and_fix(
    broken: Broken, tmp_path: Path
) -> None:
    env = clean_environment(broken.env)
    # All commands at once: each is its own process, as an operator would run them.
    running = {
        name: subprocess.Popen(
            [sys.executable, "-m", "mailroom", *args],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, args in COMMANDS.items()
    }
    results = {}
    for name, process in running.items():
        output, _ = process.communicate(timeout=60)
        results[name] = (process.returncode, output)

    for name, (code, output) in results.items():
        lines = output.strip().splitlines()
        assert "Traceback" not in output, f"{name}:\n{output}"
        shown = sorted(piece for piece in pieces(broken.password) if piece in output)
        assert not shown, f"{name} printed the password ({shown}):\n{output}"
        if name not in broken.must_fail and code == 0:
            continue  # e.g. reading a read-only file works, as it should
        assert code != 0, f"{name}:\n{output}"
        assert len(lines) <= 3, f"{name}: {len(lines)} lines:\n{output}"
        assert "DATABASE_URL" in output, f"{name}:\n{output}"
        assert broken.fix in output, f"{name} does not say {broken.fix!r}:\n{output}"


# -- the library gets the same errors -------------------------------------------------------


def test_the_library_raises_database_errors_with_the_password_masked(tmp_path: Path) -> None:
    corrupt = tmp_path / "mailroom.db"
    corrupt.write_bytes(os.urandom(20_000))
    outbox = Outbox(load_settings(environ={"DATABASE_URL": f"sqlite:///{corrupt}"}))
    try:
        with pytest.raises(DatabaseFileError, match="DATABASE_URL") as raised:
            outbox.send(Message(to=["ada@example.com"], subject="Hi", text="hello"))
    finally:
        outbox.dispose()
    assert raised.value.setting == "DATABASE_URL"
    assert isinstance(raised.value, DatabaseError)

    url = f"postgresql://mailroom:{PASSWORD}@127.0.0.1:{closed_port()}/mailroom"
    engine = database.create_outbox_engine(url)
    try:
        with pytest.raises(DatabaseUnreachableError) as unreachable:
            database.check_schema(engine)
    finally:
        engine.dispose()
    assert isinstance(unreachable.value, ConnectionError)
    assert PASSWORD not in str(unreachable.value)
    assert "postgresql://mailroom:***@127.0.0.1" in str(unreachable.value)


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://mailroom:{PASSWORD}@127.0.0.1/mailroom",
        f"postgresql://mailroom@127.0.0.1/mailroom?password={PASSWORD}&application_name=x",
    ],
)
def test_the_engine_never_shows_the_password(url: str) -> None:
    # SQLAlchemy masks the user information's password in an engine's repr, not ?password=:
    # an application logging Outbox.engine must not print it either.
    engine = database.create_outbox_engine(url)
    try:
        for shown in (repr(engine), str(engine.url), repr(engine.url)):
            assert PASSWORD not in shown
        assert engine.url.password == PASSWORD  # still what the driver gets
    finally:
        engine.dispose()


def test_an_unsupported_scheme_is_refused_with_the_settings() -> None:
    with pytest.raises(SettingsError, match="DATABASE_URL") as raised:
        load_settings(environ={"DATABASE_URL": f"mysql://u:{PASSWORD}@h/db"})
    assert "mysql://" in str(raised.value)
    assert PASSWORD not in str(raised.value)
    with pytest.raises(SettingsError, match="not a database URL") as bare:
        load_settings(environ={"DATABASE_URL": f"u:{PASSWORD}@h/db"})
    assert PASSWORD not in str(bare.value)


# -- -v: the traceback of a database fault -------------------------------------------------


def run_mailroom(
    args: list[str], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailroom", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "command",
    [["status"], ["queue", "list"], ["db", "upgrade"], ["worker", "--once"]],
    ids=" ".join,
)
def test_verbose_shows_the_traceback_of_a_database_fault(
    command: list[str], tmp_path: Path
) -> None:
    url = f"postgresql://mailroom:{PASSWORD}@127.0.0.1:{closed_port()}/mailroom"
    env = clean_environment({"DATABASE_URL": url})
    quiet = run_mailroom(command, env, tmp_path)
    verbose = run_mailroom(["-v", *command], env, tmp_path)

    assert quiet.returncode == 1, quiet.stderr
    assert "Traceback" not in quiet.stderr
    errors = [line for line in quiet.stderr.splitlines() if not line.startswith("INFO ")]
    assert len(errors) == 1, quiet.stderr
    assert errors[0].startswith("mailroom: error: DATABASE_URL postgresql://mailroom:***@")

    assert verbose.returncode == 1, verbose.stderr
    assert "Traceback (most recent call last)" in verbose.stderr
    assert "DatabaseUnreachableError" in verbose.stderr
    assert verbose.stderr.strip().splitlines()[-1] == errors[0]
    for output in (quiet.stdout, quiet.stderr, verbose.stdout, verbose.stderr):
        assert not pieces(PASSWORD) & {output[i : i + 4] for i in range(len(output))}


def test_worker_children_show_a_database_fault_in_one_line_even_with_verbose(
    tmp_path: Path,
) -> None:
    url = f"postgresql://mailroom:{PASSWORD}@127.0.0.1:{closed_port()}/mailroom"
    env = clean_environment({"DATABASE_URL": url})
    result = run_mailroom(["-v", "worker", "--once", "--processes", "2"], env, tmp_path)
    assert result.returncode == 1, result.stderr
    # Each child: its one line; the parent: how many failed. No child's traceback.
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("mailroom: error:")]
    assert len(errors) == 3, result.stderr
    assert sum("cannot connect" in line for line in errors) == 2, result.stderr
    assert errors[-1] == "mailroom: error: 2 of 2 worker processes ended with an error"


@pytest.mark.parametrize("password", [PORT_PASSWORD, QUERY_PASSWORD, AT_PASSWORD])
@pytest.mark.parametrize(
    "command",
    [*COMMANDS.values(), ["streams", "list"]],
    ids=" ".join,
)
def test_no_piece_of_a_password_with_an_at_sign_even_with_verbose_or_in_the_error_log(
    password: str, command: list[str], tmp_path: Path
) -> None:
    url = f"postgresql://mailroom:{password}@127.0.0.1:{closed_port()}/mailroom"
    log = tmp_path / "errors.log"
    env = clean_environment({"DATABASE_URL": url, "ERROR_LOG_FILE": str(log)})
    for args in (command, ["-v", *command]):
        result = run_mailroom(args, env, tmp_path)
        assert result.returncode != 0, result.stderr
        assert "%40" in result.stderr, result.stderr
        assert "unexpected" not in result.stderr, result.stderr
        logged = log.read_text() if log.exists() else ""
        for output in (result.stdout, result.stderr, logged):
            shown = sorted(piece for piece in pieces(password) if piece in output)
            assert not shown, f"{args} printed the password ({shown}):\n{output}"


def test_the_traceback_of_a_translated_fault_loses_the_password() -> None:
    # A driver that names a piece of the password (as psycopg named the host it was given):
    # the DatabaseError is scrubbed, and so is the driver's exception SQLAlchemy chains to
    # it, which a -v traceback and a logged exception print.
    url = f"postgresql://mailroom:{PASSWORD}@127.0.0.1:{closed_port()}/mailroom"
    engine = database.create_outbox_engine(url)

    @event.listens_for(engine, "do_connect")
    def _connect(*_args: object) -> None:
        raise psycopg.OperationalError(f"failed to resolve host '{PASSWORD}'")

    try:
        with pytest.raises(DatabaseUnreachableError) as raised:
            database.check_schema(engine)
    finally:
        engine.dispose()
    printed = "".join(traceback.format_exception(raised.value))
    assert "psycopg.OperationalError" in printed  # the chain is kept, scrubbed
    assert not {piece for piece in pieces(PASSWORD) if piece in printed}, printed
