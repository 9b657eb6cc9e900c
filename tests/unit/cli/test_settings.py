"""Connection settings: arguments win over FIREBOX_* variables, which win over the defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from firebox.client import ConnectionSettings, SettingsError
from firebox.client.settings import DEFAULT_AGENT, DEFAULT_EXECUTOR


def test_defaults_are_the_make_run_addresses_without_tls_or_token() -> None:
    settings = ConnectionSettings.from_env({})
    assert (settings.agent, settings.executor) == (DEFAULT_AGENT, DEFAULT_EXECUTOR)
    assert settings.token is None and not settings.tls
    assert settings.metadata() == ()
    assert settings.channel_credentials() is None


def test_environment_variables_fill_every_setting(tmp_path: Path) -> None:
    env = {
        "FIREBOX_AGENT": "agent.example:1",
        "FIREBOX_EXECUTOR": "executor.example:2",
        "FIREBOX_AUTH_TOKEN": "s3cret",
        "FIREBOX_TLS_CA": str(tmp_path / "ca.pem"),
    }
    settings = ConnectionSettings.from_env(env)
    assert settings.agent == "agent.example:1"
    assert settings.executor == "executor.example:2"
    assert settings.metadata() == (("authorization", "Bearer s3cret"),)
    assert settings.tls_ca == tmp_path / "ca.pem" and settings.tls


def test_arguments_win_over_environment() -> None:
    env = {"FIREBOX_AGENT": "from-env:1", "FIREBOX_AUTH_TOKEN": "env-token"}
    settings = ConnectionSettings.from_env(env, agent="from-flag:2", token="flag-token")
    assert settings.agent == "from-flag:2"
    assert settings.token == "flag-token"


def test_client_certificate_without_key_is_refused_naming_both_settings(tmp_path: Path) -> None:
    cert = tmp_path / "client.pem"
    cert.write_text("not used")
    settings = ConnectionSettings.from_env({}, tls_cert=cert)
    with pytest.raises(SettingsError, match="FIREBOX_TLS_CLIENT_KEY"):
        settings.channel_credentials()


def test_missing_ca_file_is_reported_with_its_path(tmp_path: Path) -> None:
    settings = ConnectionSettings.from_env({}, tls_ca=tmp_path / "missing.pem")
    with pytest.raises(SettingsError, match=r"missing\.pem"):
        settings.channel_credentials()


def test_client_certificate_comes_from_the_client_variables(tmp_path: Path) -> None:
    env = {
        "FIREBOX_TLS_CLIENT_CERT": str(tmp_path / "client.pem"),
        "FIREBOX_TLS_CLIENT_KEY": str(tmp_path / "client.key"),
    }
    settings = ConnectionSettings.from_env(env)
    assert settings.tls_cert == tmp_path / "client.pem"
    assert settings.tls_key == tmp_path / "client.key"
    assert settings.tls


def test_the_services_certificate_variables_are_not_the_clients(tmp_path: Path) -> None:
    # FIREBOX_TLS_CERT / FIREBOX_TLS_KEY are the services' server certificate.
    env = {"FIREBOX_TLS_CERT": str(tmp_path / "server.pem"), "FIREBOX_TLS_KEY": str(tmp_path / "server.key")}
    settings = ConnectionSettings.from_env(env)
    assert settings.tls_cert is None and settings.tls_key is None
    assert not settings.tls
