"""The SMTP submission port's settings: defaults, and each wrong value named in its error."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailroom.config import load_settings
from mailroom.errors import SettingsError


def test_defaults_listen_on_loopback_and_trust_no_network() -> None:
    settings = load_settings(environ={})
    assert (settings.SMTPD_HOST, settings.SMTPD_PORT) == ("127.0.0.1", 2525)
    assert settings.SMTPD_TRUSTED_NETWORKS == ()
    assert settings.SMTPD_MAX_MESSAGE_SIZE is None  # follows EMAIL_MAX_MESSAGE_SIZE
    assert settings.SMTPD_RATE_LIMIT == 0
    assert settings.SMTPD_STREAM == "transactional"


def test_trusted_networks_read_as_a_comma_separated_list() -> None:
    settings = load_settings(environ={"SMTPD_TRUSTED_NETWORKS": "10.0.0.0/8, ::1"})
    assert settings.SMTPD_TRUSTED_NETWORKS == ("10.0.0.0/8", "::1")


@pytest.mark.parametrize(
    ("environ", "setting", "says"),
    [
        ({"SMTPD_PORT": "70000"}, "SMTPD_PORT", "not a port number"),
        ({"SMTPD_TRUSTED_NETWORKS": "10.0.0.0/33"}, "SMTPD_TRUSTED_NETWORKS", "'10.0.0.0/33'"),
        ({"SMTPD_MAX_RECIPIENTS": "0"}, "SMTPD_MAX_RECIPIENTS", "at least 1"),
        ({"SMTPD_RATE_LIMIT": "-1"}, "SMTPD_RATE_LIMIT", "0 (no limit)"),
        ({"SMTPD_MAX_MESSAGE_SIZE": "0"}, "SMTPD_MAX_MESSAGE_SIZE", "positive"),
        (
            {"SMTPD_MAX_MESSAGE_SIZE": "2000", "EMAIL_MAX_MESSAGE_SIZE": "1000"},
            "SMTPD_MAX_MESSAGE_SIZE",
            "over EMAIL_MAX_MESSAGE_SIZE",
        ),
        ({"SMTPD_STREAM": "x" * 65}, "SMTPD_STREAM", "1 to 64"),
        ({"SMTPD_SHUTDOWN_GRACE": "-1"}, "SMTPD_SHUTDOWN_GRACE", "0 or more"),
        ({"SMTPD_MAX_CONNECTIONS": "0"}, "SMTPD_MAX_CONNECTIONS", "positive"),
        ({"SMTPD_MAX_CONNECTIONS": "-5"}, "SMTPD_MAX_CONNECTIONS", "positive"),
        ({"SMTPD_MAX_CONNECTIONS": "many"}, "SMTPD_MAX_CONNECTIONS", "many"),
        ({"SMTPD_MAX_CONNECTIONS_PER_CLIENT": "0"}, "SMTPD_MAX_CONNECTIONS_PER_CLIENT", "positive"),
        ({"SMTPD_MAX_CONNECTIONS_PER_CLIENT": "2.5"}, "SMTPD_MAX_CONNECTIONS_PER_CLIENT", "2.5"),
        ({"SMTPD_TLS_KEYFILE": "/etc/hostname"}, "SMTPD_TLS_CERTFILE", "without the certificate"),
        ({"SMTPD_TLS_CERTFILE": "/no/such/cert.pem"}, "SMTPD_TLS_CERTFILE", "not a readable"),
    ],
)
def test_a_wrong_value_names_its_setting(environ: dict[str, str], setting: str, says: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(environ=environ)
    assert raised.value.setting == setting
    assert says in str(raised.value)


def test_a_certificate_that_exists_is_taken(tmp_path: Path) -> None:
    certificate = tmp_path / "cert.pem"
    certificate.write_text("not checked here: `mailroom smtpd` loads it before it listens")
    settings = load_settings(environ={"SMTPD_TLS_CERTFILE": str(certificate)})
    taken = settings.SMTPD_TLS_CERTFILE
    assert taken == certificate


def test_connection_limits_default_to_postfixs_per_client_count() -> None:
    settings = load_settings(environ={})
    assert settings.SMTPD_MAX_CONNECTIONS == 200
    assert settings.SMTPD_MAX_CONNECTIONS_PER_CLIENT == 50
    lowered = load_settings(environ={"SMTPD_MAX_CONNECTIONS": "10"})
    assert lowered.SMTPD_MAX_CONNECTIONS == 10  # a per-client limit above it is no error
