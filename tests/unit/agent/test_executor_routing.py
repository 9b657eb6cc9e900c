"""The pieces of routing to several executors: the owner table, the settings, address resolution."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agent_service.config import load
from agent_service.executor_pool import ExecutorPool
from agent_service.schema import migration
from agent_service.store import SqliteStore
from firebox.agent.v1 import agent_pb2


async def test_workspace_owners_are_recorded_moved_deleted_and_kept_across_reopen(tmp_path: Path):
    store = await SqliteStore.open(tmp_path / "a.db")
    assert await store.get_workspace_owner("ws_1") is None
    await store.put_workspace_owner("ws_1", "ex_a", "10.0.0.1:50051")
    await store.put_workspace_owner("ws_2", "ex_b", "10.0.0.2:50051")
    await store.put_workspace_owner("ws_1", "ex_c", "10.0.0.3:50051")
    await store.close()
    store = await SqliteStore.open(tmp_path / "a.db")
    assert await store.get_workspace_owner("ws_1") == ("ex_c", "10.0.0.3:50051")
    assert await store.get_workspace_owner("ws_2") == ("ex_b", "10.0.0.2:50051")
    await store.delete_workspace_owner("ws_2")
    assert await store.get_workspace_owner("ws_2") is None
    await store.close()


async def test_a_version_1_database_is_migrated_keeping_its_sessions(tmp_path: Path):
    # A file as the first agent left it: migration 1 only (released migrations are never edited).
    conn = sqlite3.connect(tmp_path / "a.db")
    for statement in migration(1, "sqlite"):
        conn.execute(statement)
    conn.execute(
        "INSERT INTO sessions (id, create_ns, data) VALUES (?, ?, ?)",
        ("ses-old", 1, agent_pb2.Session(id="ses-old", title="kept").SerializeToString()),
    )
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()
    store = await SqliteStore.open(tmp_path / "a.db")
    assert (await store.get_session("ses-old")).title == "kept"
    await store.put_workspace_owner("ws_1", "ex_a", "h:1")
    assert await store.get_workspace_owner("ws_1") == ("ex_a", "h:1")
    await store.close()


def test_executor_takes_a_list_and_tls_settings_come_from_flags_or_variables(tmp_path: Path):
    config = load(
        ["--executor", " 10.0.0.1:50051 , 10.0.0.2:50051", "--executor-tls-server-name", "executor"],
        {"FIREBOX_TLS_CERT": "/tls/server.pem", "FIREBOX_EXECUTOR_TLS_CA": "/tls/ca.pem"},
    )
    assert config.executor == "10.0.0.1:50051,10.0.0.2:50051"
    assert config.tls_cert == Path("/tls/server.pem") and config.tls_key is None
    assert config.executor_tls_ca == Path("/tls/ca.pem")
    assert config.executor_tls_server_name == "executor"


def test_a_bad_address_in_the_executor_list_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exited:
        load(["--executor", "10.0.0.1:50051,nohost"], {})
    assert exited.value.code == 2
    assert "nohost" in capsys.readouterr().err


async def test_addresses_and_single_names_are_dialled_as_given(tmp_path: Path):
    store = await SqliteStore.open(tmp_path / "a.db")
    pool = ExecutorPool("127.0.0.1:1,[::1]:2,localhost:3", store)
    assert await pool._resolve() == ["127.0.0.1:1", "[::1]:2", "localhost:3"]
    await pool.close()
    await store.close()
