"""A lean package: ``import hypercore`` pulls in no book or data tooling, and the built
wheel works with torch and safetensors alone.

``test_wheel_works_with_torch_and_safetensors_only`` builds the wheel from a copy
of the sources (``pip wheel --no-deps --no-build-isolation``), creates a bare
venv (``python -m venv --without-pip``), installs the wheel into it with
``pip --python VENV install --no-deps``, and runs there: the README's Python
example, every docstring example of the package (``doctest``), and an import of
every module the wheel ships.

How the bare venv gets torch and safetensors: a ``.pth`` file points it at a
folder of symlinks to exactly those two distributions and the closure of their
declared requirements (sympy, networkx, jinja2, ..., as torch's metadata lists
them), taken from the test's own environment. Nothing else is visible: neither
NumPy, scikit-learn, tqdm, pandas nor matplotlib. Measured on the 2-core CI
machine: the whole test takes 5 to 10 s. The alternative, ``pip install
torch==2.13.0 safetensors`` into a fresh venv (torch from the local wheel, its
requirements from the package index), took 18 s for the install alone and needs
the index; the symlinks need nothing beyond this environment.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Imported by no part of the library itself (torch may import some of them on its own).
HEAVY = ("sklearn", "tqdm", "papermill", "pandas", "matplotlib", "seaborn", "scipy", "IPython")


def test_import_hypercore_pulls_in_no_book_or_data_tooling():
    code = textwrap.dedent(
        """
        import json, sys
        import torch, safetensors.torch  # what they import is theirs (torch.hub tries tqdm)
        before = set(sys.modules)
        import hypercore, hypercore.data, hypercore.train, hypercore.checkpoint
        print(json.dumps(sorted(set(sys.modules) - before)))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    added = json.loads(out.stdout)
    heavy = sorted({m.split(".")[0] for m in added} & {*HEAVY, "numpy"})
    assert not heavy, f"import hypercore imported {heavy}"
    assert not [m for m in added if m.startswith(("hypercore.book", "hypercore.bench"))]


def test_fit_trains_without_tqdm_and_load_dataset_names_its_extra(monkeypatch):
    import torch
    from torch import nn

    import hypercore as hc
    from hypercore.data import load_dataset

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.setitem(sys.modules, "tqdm", None)  # as if not installed: import fails
    model = nn.Linear(3, 1)
    data = (torch.randn(8, 3), torch.randn(8, 1))
    history = hc.fit(model, lambda m, x, y: (m(x) - y).pow(2).mean(), data, epochs=2)
    assert [row["epoch"] for row in history.rows] == [0, 1, 2]
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'hypercore\[data\]'"):
        load_dataset("wine")


def _requirements_closure(names: list[str]) -> list[importlib.metadata.Distribution]:
    """The installed distributions ``names`` need, following their (marker-free or
    matching) requirements; extras are not followed."""
    from packaging.requirements import Requirement

    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        dist = importlib.metadata.distribution(name)
        seen[name] = dist
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return list(seen.values())


def _link_distributions(dists: list[importlib.metadata.Distribution], folder: Path) -> None:
    """Symlink each distribution's top-level files and folders (metadata too) into ``folder``."""
    folder.mkdir()
    for dist in dists:
        site = Path(dist.locate_file(""))
        tops = {Path(f).parts[0] for f in dist.files or []}
        for top in tops:
            if top in ("..", "__pycache__") or top.endswith(".pth") or top == "bin":
                continue
            if (site / top).exists() and not (folder / top).exists():
                (folder / top).symlink_to(site / top)


def _run(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    # no PYTHONPATH or user site: the bare venv must see only what the test gives it
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONNOUSERSITE"] = "1"
    out = subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env)
    assert out.returncode == 0, f"{args[:4]} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def _readme_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert blocks, "README.md has no ```python example"
    return blocks[0]


#: Runs inside the bare venv: everything must hold there.
CHECKS = """
import doctest, importlib, importlib.util, json, pkgutil, sys
from pathlib import Path

venv = Path(sys.argv[1])
for absent in ("sklearn", "tqdm", "numpy", "pandas", "matplotlib", "papermill"):
    assert importlib.util.find_spec(absent) is None, f"{absent} is visible in the bare venv"

import torch
from torch import nn
import hypercore

assert Path(hypercore.__file__).resolve().is_relative_to(venv.resolve()), hypercore.__file__
for gone in ("hypercore.book", "hypercore.bench"):
    assert importlib.util.find_spec(gone) is None, f"{gone} is in the wheel"

modules = ["hypercore"] + [
    m.name for m in pkgutil.walk_packages(hypercore.__path__, "hypercore.")
]
for name in modules:
    importlib.import_module(name)  # every shipped module imports with torch + safetensors

exec(compile(Path("readme_example.py").read_text(), "README.md", "exec"), {})
assert Path("hnet.safetensors").is_file()

# Docstring examples see torch, nn and hypercore's top-level names, as after
# `import torch; from torch import nn; from hypercore import *`.
names = {"torch": torch, "nn": nn, "hc": hypercore}
names.update({n: getattr(hypercore, n) for n in hypercore.__all__})
ran = {}
for name in modules:
    module = sys.modules[name]
    if ">>>" not in (module.__doc__ or "") + Path(module.__file__).read_text():
        continue
    result = doctest.testmod(module, extraglobs=names, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{name}: {result.failed} docstring example(s) failed"
    ran[name] = result.attempted
print(json.dumps({"modules": len(modules), "doctests": ran}))
"""


def test_wheel_works_with_torch_and_safetensors_only(tmp_path):
    pytest.importorskip("packaging")
    # 1. the wheel, built from a copy so that no build output lands in the work tree
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "hypercore", src / "hypercore", ignore=shutil.ignore_patterns("__pycache__")
    )
    dist = tmp_path / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", dist, src], src)
    (wheel,) = dist.glob("hypercore-*.whl")
    metadata = _run(
        [
            sys.executable,
            "-c",
            f"import zipfile; z = zipfile.ZipFile({str(wheel)!r}); "
            "print('\\n'.join(z.namelist())); "
            "print(z.read(next(n for n in z.namelist() if n.endswith('METADATA'))).decode())",
        ],
        tmp_path,
    ).stdout
    requires = [
        line.split(":", 1)[1].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    assert sorted(re.split(r"[<>=!~; ]", r)[0] for r in requires) == ["safetensors", "torch"]
    assert "hypercore/book/" not in metadata and "hypercore/bench/" not in metadata

    # 2. a bare venv that sees torch, safetensors and their requirements only
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path)
    python = venv / "bin" / "python"
    site = _run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path
    ).stdout.strip()
    deps = tmp_path / "deps"
    _link_distributions(_requirements_closure(["torch", "safetensors"]), deps)
    (Path(site) / "torch_and_safetensors.pth").write_text(f"{deps}\n")
    _run(
        [*pip, "--python", python, "install", "--no-deps", "--no-index", "--no-compile", wheel],
        tmp_path,
    )

    # 3. the README example, every docstring example, every module
    work = tmp_path / "work"
    work.mkdir()
    (work / "readme_example.py").write_text(_readme_example())
    (work / "checks.py").write_text(CHECKS)
    out = _run([python, "-I", "checks.py", str(venv)], work, timeout=300)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["modules"] > 20
    assert {"hypercore.hypernetwork", "hypercore.errors"} <= set(report["doctests"])
