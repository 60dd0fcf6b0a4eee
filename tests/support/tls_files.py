"""Where the test TLS material lives."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass
class TLSFiles:
    ca: trustme.CA
    ca_path: Path
    server_context: ssl.SSLContext
