"""clients/python/README.md's Quick start, run as written against the session's real server: the server's
address goes where the README exports it (FINESERVE_TARGET), and its Python blocks run in order, in a folder
holding mnist_tiny, as a reader would paste them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fineserve.v1 import training_pb2
from fineserve_client.connection import ENV
from harness.launcher import ServerProcess

README = Path(__file__).resolve().parents[2] / "clients" / "python" / "README.md"


def quick_start_blocks() -> list[str]:
    section = README.read_text().split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_readme_quick_start_runs_as_written(server: ServerProcess, shared_data: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    blocks = quick_start_blocks()
    assert len(blocks) == 2, "the Quick start has a blocking and an asyncio example"
    (tmp_path / "mnist_tiny").symlink_to(shared_data / "mnist_tiny")
    monkeypatch.chdir(tmp_path)
    for var in ENV.values():
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FINESERVE_TARGET", server.target)
    namespace: dict[str, object] = {"__name__": "quick_start"}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    job = namespace["job"]
    assert job.state == training_pb2.SUCCEEDED and job.model == "my-digits/1"  # type: ignore[attr-defined]
    out = capsys.readouterr().out.splitlines()
    assert f"{job.id} SUCCEEDED my-digits/1" in out[1]  # type: ignore[attr-defined]
    assert [line.split()[0] for line in out[2:4]] == ["mnist_tiny/valid/3/7006.png", "mnist_tiny/valid/7/70.png"]
    assert all(line.split()[1] in ("3", "7") for line in out[2:4])
    assert out[4].startswith("my-digits 1 ['3', '7']")
    assert re.fullmatch(r"\['[37]', '[37]'\]", out[5])
