"""The type of the ``spawn`` fixture (tests/conftest.py): start a process the test owns."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

Spawn = Callable[[list[str], dict[str, str]], "subprocess.Popen[bytes]"]
