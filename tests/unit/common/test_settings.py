"""One settings loader for both services (firebox/common/settings.py), and docs that match it."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from agent_service import config as agent_config
from executor_service import config as executor_config
from firebox.common import settings
from firebox.common.settings import Setting

ROOT = Path(__file__).resolve().parents[3]
SERVICES = [
    pytest.param(executor_config, executor_config.ExecutorConfig, id="executor"),
    pytest.param(agent_config, agent_config.AgentConfig, id="agent"),
]


@pytest.mark.parametrize(("module", "config_type"), SERVICES)
def test_every_setting_is_a_flag_and_a_variable_of_one_field(module, config_type) -> None:
    table = module.SETTINGS
    assert len({s.field for s in table}) == len(table)
    assert len({s.flag for s in table}) == len(table)
    assert len({s.env for s in table}) == len(table)
    assert all(s.env.startswith("FIREBOX_") and s.flag.startswith("--") for s in table)
    settings.check_fields(table, config_type)
    help_text = module.build_parser().format_help()
    for setting in table:
        assert setting.flag in help_text and setting.env in help_text


@pytest.mark.parametrize(("module", "config_type"), SERVICES)
def test_a_flag_wins_over_its_variable_and_a_variable_over_the_default(module, config_type) -> None:
    assert module.load([], {"FIREBOX_LISTEN": "0.0.0.0:7000"}).listen == "0.0.0.0:7000"
    assert (
        module.load(["--listen", "127.0.0.1:7001"], {"FIREBOX_LISTEN": "0.0.0.0:7000"}).listen
        == "127.0.0.1:7001"
    )
    assert module.load([], {}).listen == config_type().listen
    # An empty variable is no setting at all.
    assert module.load([], {"FIREBOX_LISTEN": ""}).listen == config_type().listen


@pytest.mark.parametrize(("module", "config_type"), SERVICES)
def test_a_bad_variable_exits_naming_it_without_repeating_its_value(module, config_type, capsys) -> None:
    secret_looking = "not-a-number-" + "x" * 200
    with pytest.raises(SystemExit) as exited:
        module.load([], {"FIREBOX_LOG_LEVEL": secret_looking})
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "FIREBOX_LOG_LEVEL" in err
    assert "x" * 200 not in err
    assert len(err) < 2000


def test_a_variable_outside_its_choices_is_refused() -> None:
    with pytest.raises(SystemExit):
        executor_config.load([], {"FIREBOX_BACKEND": "podman"})


def test_paths_expand_the_home_directory() -> None:
    assert executor_config.load(["--config-dir", "~/x"], {}).config_dir == Path.home() / "x"
    assert agent_config.load([], {"FIREBOX_CONFIG_DIR": "~/y"}).config_dir == Path.home() / "y"


def test_a_setting_naming_no_field_fails_at_once() -> None:
    bad = (Setting("no_such_field", "--nope", "FIREBOX_NOPE", str, "a typo"),)
    with pytest.raises(TypeError, match="no_such_field"):
        settings.check_fields(bad, executor_config.ExecutorConfig)


def test_defaults_read_as_a_person_reads_them() -> None:
    defaults = executor_config.ExecutorConfig()
    by_field = {s.field: s for s in executor_config.SETTINGS}
    assert settings.shown_default(by_field["output_cap_bytes"], defaults) == "67108864 (64 MiB)"
    assert settings.shown_default(by_field["disk_bytes"], defaults) == "2147483648 (2 GiB)"
    assert settings.shown_default(by_field["training_log"], defaults) == "on"
    assert settings.shown_default(by_field["config_dir"], defaults) == "~/.firebox/executor"
    assert settings.shown_default(by_field["tools_file"], defaults) == "none"


def test_the_docs_tables_are_the_ones_the_settings_make() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen-settings-docs.py"), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_the_docs_check_fails_when_a_page_drifts(tmp_path, monkeypatch) -> None:
    spec = importlib.util.spec_from_file_location(
        "gen_settings_docs", ROOT / "scripts" / "gen-settings-docs.py"
    )
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    for page, *_ in gen.PAGES:
        (tmp_path / page).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / page).write_text((ROOT / page).read_text())
    monkeypatch.setattr(gen, "ROOT", tmp_path)
    assert gen.stale_pages(write=False) == []
    page = tmp_path / "docs" / "executor.md"
    page.write_text(page.read_text().replace("`FIREBOX_MAX_RUNNING`", "`FIREBOX_MAX_RUN`"))
    assert gen.stale_pages(write=False) == ["docs/executor.md"]
    gen.stale_pages(write=True)
    assert gen.stale_pages(write=False) == []


def test_a_parse_error_is_an_argparse_error_or_a_value_error() -> None:
    # The loader catches exactly these two; a parser raising anything else would be a crash at start.
    for module in (executor_config, agent_config):
        for setting in module.SETTINGS:
            if setting.choices:
                continue
            try:
                setting.parse("\x00not valid\x00")
            except (argparse.ArgumentTypeError, ValueError):
                pass
