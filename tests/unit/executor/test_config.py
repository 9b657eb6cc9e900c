"""The executor's configuration: flags, FIREBOX_* variables, precedence, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from executor_service.config import DEFAULT_OUTPUT_CAP_BYTES, load


def test_defaults_listen_on_loopback_with_state_under_home():
    config = load([], environ={})
    assert config.listen == "127.0.0.1:50051"
    assert config.config_dir == Path.home() / ".firebox" / "executor"
    assert config.log_dir == config.config_dir / "logs"
    assert config.backend == "auto" and config.image == "firebox-busybox:latest"
    assert config.output_cap_bytes == DEFAULT_OUTPUT_CAP_BYTES
    assert config.env_deny == ("*KEY*", "*SECRET*", "*TOKEN*", "*PASSWORD*")
    assert config.training_log is True and config.auth_token is None


def test_environment_variables_apply_and_flags_win():
    environ = {
        "FIREBOX_LISTEN": "0.0.0.0:6000",
        "FIREBOX_BACKEND": "bwrap",
        "FIREBOX_IMAGE": "from-env:1",
        "FIREBOX_TRAINING_LOG": "off",
        "FIREBOX_ENV_ALLOW": "GITHUB_TOKEN, NPM_TOKEN",
        "FIREBOX_AUTH_TOKEN": "s3cret",
    }
    config = load(["--image", "from-flag:2", "--config-dir", "/tmp/fb"], environ=environ)
    assert config.listen == "0.0.0.0:6000" and config.backend == "bwrap"
    assert config.image == "from-flag:2"
    assert config.config_dir == Path("/tmp/fb")
    assert config.training_log is False
    assert config.env_allow == ("GITHUB_TOKEN", "NPM_TOKEN")
    assert config.auth_token == "s3cret"


def test_auth_token_is_not_a_flag_and_not_in_repr(capsys):
    with pytest.raises(SystemExit):
        load(["--auth-token", "x"], environ={})
    config = load([], environ={"FIREBOX_AUTH_TOKEN": "hidden-value"})
    assert "hidden-value" not in repr(config)


@pytest.mark.parametrize(
    ("argv", "environ", "mentions"),
    [
        (["--listen", "nonsense"], {}, "HOST:PORT"),
        (["--backend", "podman"], {}, "podman"),
        (["--output-cap-bytes", "-1"], {}, "positive"),
        ([], {"FIREBOX_DEFAULT_TIMEOUT": "soon"}, "FIREBOX_DEFAULT_TIMEOUT"),
        ([], {"FIREBOX_BACKEND": "lxc"}, "FIREBOX_BACKEND"),
        ([], {"FIREBOX_TRAINING_LOG": "maybe"}, "FIREBOX_TRAINING_LOG"),
    ],
)
def test_bad_values_exit_with_a_usage_message_naming_them(argv, environ, mentions, capsys):
    with pytest.raises(SystemExit) as info:
        load(argv, environ=environ)
    assert info.value.code == 2
    assert mentions in capsys.readouterr().err
