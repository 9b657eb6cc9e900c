"""Loading TLS files: bad files and half-given settings fail at start with a message naming the
flag and the path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc
import pytest

from firebox.common.errors import InvalidArgument
from firebox.common.tls import ClientTLS, ServerTLS, read_pem
from tests.support.tls_certs import CertSet, make_certs


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    return make_certs(tmp_path_factory.mktemp("certs"))


def test_valid_files_build_server_and_channel_credentials(certs: CertSet) -> None:
    assert isinstance(ServerTLS(certs.server_cert, certs.server_key).credentials(), grpc.ServerCredentials)
    mutual = ServerTLS(certs.server_cert, certs.server_key, certs.ca)
    assert mutual.mutual
    assert isinstance(mutual.credentials(), grpc.ServerCredentials)
    client = ClientTLS(certs.ca, certs.client_cert, certs.client_key)
    assert isinstance(client.credentials(), grpc.ChannelCredentials)


def test_missing_cert_file_names_flag_and_path(tmp_path: Path, certs: CertSet) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(InvalidArgument) as caught:
        ServerTLS(missing, certs.server_key).credentials()
    assert caught.value.field == "--tls-cert"
    assert str(missing) in caught.value.message
    assert "not found" in caught.value.message


def test_missing_client_ca_names_its_flag(tmp_path: Path, certs: CertSet) -> None:
    with pytest.raises(InvalidArgument) as caught:
        ServerTLS(certs.server_cert, certs.server_key, tmp_path / "ca.pem").credentials()
    assert caught.value.field == "--tls-client-ca"


def test_channel_errors_use_the_given_flag_prefix(tmp_path: Path, certs: CertSet) -> None:
    with pytest.raises(InvalidArgument) as caught:
        ClientTLS(ca=tmp_path / "absent.pem", flag_prefix="--tls").credentials()
    assert caught.value.field == "--tls-ca"
    with pytest.raises(InvalidArgument) as caught:
        ClientTLS(certs.ca, certs.client_cert, tmp_path / "absent-key.pem").credentials()
    assert caught.value.field == "--executor-tls-key"


def test_directory_empty_file_and_non_pem_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_bytes(b"")
    text = tmp_path / "text.pem"
    text.write_text("hello\n")
    with pytest.raises(InvalidArgument, match="is a directory"):
        read_pem(tmp_path, "--tls-cert", kind="certificate")
    with pytest.raises(InvalidArgument, match="is empty"):
        read_pem(empty, "--tls-cert", kind="certificate")
    with pytest.raises(InvalidArgument, match="no PEM certificate"):
        read_pem(text, "--tls-cert", kind="certificate")
    with pytest.raises(InvalidArgument, match="no PEM private key"):
        read_pem(text, "--tls-key", kind="key")


def test_certificate_given_as_key_is_refused(certs: CertSet) -> None:
    with pytest.raises(InvalidArgument) as caught:
        ServerTLS(certs.server_cert, certs.server_cert).credentials()
    assert caught.value.field == "--tls-key"


def test_unreadable_file_reports_permission(certs: CertSet) -> None:
    # Root reads any file whatever its mode, and CI runs as root: there the check runs in a process
    # that dropped the capabilities that let root ignore a file's mode (the interpreter lives under
    # /root, so another user could not even start it).
    folder = Path(tempfile.mkdtemp(prefix="firebox-tls-"))
    try:
        folder.chmod(0o755)
        locked = folder / "locked.pem"
        locked.write_bytes(certs.server_cert.read_bytes())
        locked.chmod(0)
        probe = (
            "from firebox.common.errors import InvalidArgument\n"
            "from firebox.common.tls import read_pem\n"
            "try:\n"
            f"    read_pem({str(locked)!r}, '--tls-cert', kind='certificate')\n"
            "except InvalidArgument as e:\n"
            "    print(e)\n"
        )
        no_override = "-dac_override,-dac_read_search"
        as_user = (
            ["setpriv", "--bounding-set", no_override, "--inh-caps", no_override] if os.geteuid() == 0 else []
        )
        shown = subprocess.run(
            [*as_user, sys.executable, "-c", probe],
            cwd=Path(__file__).resolve().parents[3],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        assert "permission denied" in shown and str(locked) in shown
    finally:
        shutil.rmtree(folder)


def test_settings_decide_plaintext_tls_or_mutual() -> None:
    assert ServerTLS.from_settings(None, None) is None
    assert ServerTLS.from_settings("c.pem", "k.pem") == ServerTLS(Path("c.pem"), Path("k.pem"))
    assert ServerTLS.from_settings("c.pem", "k.pem", "ca.pem").mutual
    assert ClientTLS.from_settings() is None
    assert ClientTLS.from_settings(ca="ca.pem") == ClientTLS(ca=Path("ca.pem"))


def test_environment_variables_configure_the_server() -> None:
    env = {"FIREBOX_TLS_CERT": "/c.pem", "FIREBOX_TLS_KEY": "/k.pem", "FIREBOX_TLS_CLIENT_CA": "/ca.pem"}
    assert ServerTLS.from_env(env) == ServerTLS(Path("/c.pem"), Path("/k.pem"), Path("/ca.pem"))
    assert ServerTLS.from_env({}) is None


@pytest.mark.parametrize(
    ("cert", "key", "client_ca", "flag"),
    [
        ("c.pem", None, None, "--tls-key"),
        (None, "k.pem", None, "--tls-cert"),
        (None, None, "ca.pem", "--tls-client-ca"),
    ],
)
def test_half_given_server_settings_name_the_missing_flag(
    cert: str | None, key: str | None, client_ca: str | None, flag: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        ServerTLS.from_settings(cert, key, client_ca)
    assert caught.value.field == flag


def test_half_given_client_settings_name_the_missing_flag() -> None:
    with pytest.raises(InvalidArgument) as caught:
        ClientTLS.from_settings(ca="ca.pem", cert="c.pem")
    assert caught.value.field == "--executor-tls-key"
    with pytest.raises(InvalidArgument) as caught:
        ClientTLS.from_settings(key="k.pem", flag_prefix="--tls")
    assert caught.value.field == "--tls-cert"
    with pytest.raises(InvalidArgument) as caught:
        ClientTLS.from_settings(server_name="executor")
    assert caught.value.field == "--executor-tls-server-name"


def test_server_name_becomes_target_name_override() -> None:
    assert ClientTLS(ca=Path("ca.pem"), server_name="executor").channel_options() == [
        ("grpc.ssl_target_name_override", "executor")
    ]
    assert ClientTLS(ca=Path("ca.pem")).channel_options() == []
