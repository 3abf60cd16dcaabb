"""What the server refuses or repairs at start-up, before any caller arrives: allowed roots overlapping the data
directory, ports already in use (found before Ray starts), and the leftovers of uploads a killed server cut off."""

from __future__ import annotations

import fcntl
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.launcher import ServerProcess
from service.api.datasets import DatasetsServicer
from service.config import Settings, parse_settings


def _refusal(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The error parse_settings exits with (argparse: status 2, the message on stderr)."""
    with pytest.raises(SystemExit) as exited:
        parse_settings(argv)
    assert exited.value.code == 2
    return capsys.readouterr().err


def test_allowed_roots_must_stay_apart_from_the_data_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "srv" / "data"
    (data / "datasets").mkdir(parents=True)
    elsewhere = tmp_path / "imports"
    elsewhere.mkdir()
    link = tmp_path / "link-to-srv"
    link.symlink_to(tmp_path / "srv")

    def refused(root: Path, data_dir: Path = data) -> str:
        return _refusal(["--data-dir", str(data_dir), "--allowed-root", str(elsewhere),
                         "--allowed-root", str(root)], capsys)

    for root in (tmp_path / "srv", data, tmp_path, link, link / "data" / ".." / ".."):
        message = refused(root)
        assert f"contains the data directory {data}" in message, (root, message)
    for root in (data / "datasets", data / "models", data / "tmp", data / "importsx"):
        message = refused(root)
        assert "lies inside the data directory" in message and str(data / "imports") in message, (root, message)
    # a data directory named through a link that lies outside the root: the real paths are compared
    linked_data = tmp_path / "data-link"
    linked_data.symlink_to(data)
    assert "contains the data directory" in refused(tmp_path / "srv", linked_data)

    ok = parse_settings(["--data-dir", str(data), "--allowed-root", str(elsewhere),
                         "--allowed-root", str(data / "imports" / "team-a")])
    assert ok.allowed_roots == (elsewhere, data / "imports" / "team-a")
    assert parse_settings(["--data-dir", str(link / "data"), "--allowed-root", str(data / "imports")]).data_dir == data


def _refused_start(server: ServerProcess) -> str:
    """The log of a server process that must exit at start-up (start() polls it: a start that got as far as Ray
    would take a minute or more); one that starts anyway is stopped, and fails the test."""
    try:
        server.start(timeout=120)
    except RuntimeError as e:
        return str(e)
    server.stop()
    raise AssertionError("the server started")


def test_server_exits_on_a_root_holding_its_data_dir(tmp_path: Path) -> None:
    refusal = _refused_start(ServerProcess(tmp_path / "data", "--allowed-root", str(tmp_path)))
    assert "server exited with 2" in refusal and "contains the data directory" in refusal


@pytest.fixture
def ray_temp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A Ray temporary folder of this test's own (short: Ray's socket paths must fit 107 bytes)."""
    with tempfile.TemporaryDirectory(prefix="fs-rt-", dir="/tmp") as folder:
        monkeypatch.setenv("RAY_TMPDIR", folder)
        yield Path(folder)


@pytest.mark.parametrize("which", ["grpc", "metrics"])
def test_port_in_use_fails_before_ray_starts(tmp_path: Path, ray_temp: Path, which: str) -> None:
    with socket.socket() as held:
        if which == "grpc":  # as another gRPC server holds its port: SO_REUSEPORT must not let a second one in
            held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        server = ServerProcess(tmp_path / "data", "--port" if which == "grpc" else "--metrics-port", str(port))
        refusal = _refused_start(server)
    assert "server exited with 1" in refusal and f"address 127.0.0.1:{port} already in use" in refusal
    assert "Ray instance" not in server.log_path.read_text(), "Ray was started before the port was checked"
    assert not any(ray_temp.iterdir()), "Ray was started before the port was checked"


def test_start_removes_leftovers_of_interrupted_uploads_only(tmp_path: Path) -> None:
    tmp = tmp_path / "data" / "tmp"
    (tmp / "ds-killed.extract" / "train" / "a").mkdir(parents=True)
    (tmp / "ds-killed.upload").write_bytes(b"half an archive")
    (tmp / "ds-killed.extract" / "train" / "a" / "1.png").write_bytes(b"png")
    (tmp / "ds-orphan.extract").mkdir()
    (tmp / "ds-live.extract").mkdir()
    settings = Settings(data_dir=tmp_path / "data")
    # An upload in flight through another front door on the same data directory holds its archive's lock.
    with open(tmp / "ds-live.upload", "wb") as live:
        fcntl.flock(live, fcntl.LOCK_EX)
        DatasetsServicer(None, settings)  # type: ignore[arg-type]
        assert sorted(p.name for p in tmp.iterdir()) == ["ds-live.extract", "ds-live.upload"]
    DatasetsServicer(None, settings)  # type: ignore[arg-type]
    assert list(tmp.iterdir()) == []
