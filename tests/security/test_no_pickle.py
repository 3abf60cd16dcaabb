"""No code path that reads user-influenced files may unpickle: no pickle-family imports, every torch.load with
weights_only=True, no np.load(allow_pickle=True). Checked on the syntax tree of the service, worker, engine
and SDK sources (Ray's own use of pickle for task arguments is between our processes, not on files)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "service", ROOT / "worker", ROOT / "clients" / "python" / "fineserve_client"]
UNPICKLERS = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def _findings(path: Path, root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [f"{where} imports {a.name}" for a in node.names if a.name.split(".")[0] in UNPICKLERS]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNPICKLERS:
            found.append(f"{where} imports from {node.module}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value.id if isinstance(node.func.value, ast.Name) else ""
            kw = {k.arg: k.value for k in node.keywords}
            if owner == "torch" and node.func.attr == "load":
                safe = kw.get("weights_only")
                if not (isinstance(safe, ast.Constant) and safe.value is True):
                    found.append(f"{where} torch.load without weights_only=True")
            if owner in ("np", "numpy") and node.func.attr == "load":
                allow = kw.get("allow_pickle")
                if allow is not None and not (isinstance(allow, ast.Constant) and allow.value is False):
                    found.append(f"{where} np.load with allow_pickle")
            if node.func.attr == "read_pickle":
                found.append(f"{where} read_pickle")
    return found


def test_no_unpickling_on_user_files() -> None:
    files = [p for src in SOURCES for p in src.rglob("*.py")]
    assert len(files) > 20
    findings = [f for p in files for f in _findings(p)]
    assert not findings, "\n".join(findings)


def test_the_check_catches_what_it_should(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import pickle\nimport torch\nfrom dill import loads\ntorch.load(p)\n"
                   "torch.load(p, weights_only=False)\nimport numpy as np\nnp.load(p, allow_pickle=True)\n")
    assert len(_findings(bad, tmp_path)) == 5
