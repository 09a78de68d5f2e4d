"""Installs: declared dependencies are the ones the code imports, constraints.txt pins them all,
and the Makefile's install recipe picks the torch build that fits the machine.

The Makefile tests run the real recipes with a stub `python` (it records its arguments) and a
stub `nvidia-smi`, so nothing is downloaded and the GPU detection is exercised both ways.
"""

from __future__ import annotations

import ast
import fnmatch
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import packages_distributions, requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
CONSTRAINTS = REPO / "constraints.txt"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"

# Imported directly but installed through a declared dependency that requires them; naming
# them too would only add a second place to keep versions in step.
THROUGH = {
    "PIL": "matplotlib",  # pillow, for reading figures back in the report tests
    "httpx2": "huggingface_hub",  # the hub client's HTTP library, for its exception types
    "httpx": "huggingface_hub",  # the same before huggingface_hub 1.x (fallback import)
    "packaging": "transformers",  # version specifiers, in this test
}
# Declared although nothing imports them: distribution -> the imported name that needs it.
# transformers.Trainer raises ImportError without accelerate; bench/pretrain.py runs it.
NEEDED_BY = {"accelerate": "transformers.Trainer", "dask": "distributed"}  # Beam's DaskRunner uses dask
# Declared command-line tools, run by a Makefile target rather than imported: distribution -> target.
TOOLS = {"ruff": "lint"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> list[Requirement]:
    project = PYPROJECT["project"]
    extras = [req for group in project.get("optional-dependencies", {}).values() for req in group]
    reqs = [Requirement(req) for req in project["dependencies"] + extras]
    return [r for r in reqs if normalise(r.name) != normalise(project["name"])]  # extras naming extras


def local_modules() -> set[str]:
    return {path.parent.name for path in REPO.glob("*/*.py")}  # the packages, tests/ among them


def imported_modules() -> dict[str, set[str]]:
    """Top-level module name -> files importing it, over the project's packages and the tests
    (`import x`, `from x import y`, and the strings given to import_module/importorskip)."""
    roots = [REPO / "tests"] + [
        REPO / pattern.rstrip("*") for pattern in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    found: dict[str, set[str]] = {}
    for root in roots:
        for path in root.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
                elif (
                    isinstance(node, ast.Call)
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                    and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "importorskip")
                ):
                    names = [node.args[0].value]
                for name in names:
                    for key in (name.split(".")[0], name):  # the module, and the full dotted name
                        found.setdefault(key, set()).add(str(path.relative_to(REPO)))
    return found


def distribution_modules() -> dict[str, set[str]]:
    """Normalised distribution name -> the top-level modules it installs."""
    modules: dict[str, set[str]] = {}
    for module, dists in packages_distributions().items():
        for dist in dists:
            modules.setdefault(normalise(dist), set()).add(module)
    return modules


def test_every_declared_dependency_is_imported():
    imports = imported_modules()
    provides = distribution_modules()
    unused, missing = [], []
    for req in declared():
        modules = provides.get(normalise(req.name))
        if normalise(req.name) in TOOLS:
            continue  # test_every_declared_tool_is_run_by_the_makefile
        if normalise(req.name) in NEEDED_BY:
            user = NEEDED_BY[normalise(req.name)]
            if user not in imports:
                unused.append(f"{req.name} (kept for {user}, which nothing imports any more)")
        elif not modules:
            missing.append(req.name)
        elif not modules & imports.keys():
            unused.append(f"{req.name} (would be imported as {', '.join(sorted(modules))})")
    assert not missing, f"declared but not installed here, cannot check: {missing}"
    assert not unused, f"declared in pyproject.toml but imported nowhere: {unused}"


def test_every_declared_tool_is_run_by_the_makefile():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    names = {normalise(req.name) for req in declared()}
    env = {k: v for k, v in os.environ.items() if k != "MAKEFLAGS"}
    for tool, target in TOOLS.items():
        assert tool in names, f"{tool} is not declared in pyproject.toml"
        dry = subprocess.run(
            ["make", "-n", "-C", str(REPO), target], capture_output=True, text=True, env=env, timeout=60
        )
        assert dry.returncode == 0, dry.stderr
        assert re.search(rf"-m {tool}\b", dry.stdout), f"`make -n {target}` does not run {tool}: {dry.stdout}"


def test_ci_lints_before_it_tests():
    steps = [
        line.strip()
        for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        if line.strip().startswith("make ")
    ]
    assert steps.index("make lint") < steps.index("make test"), steps


def test_the_wheel_ships_no_test_support():
    """Test helpers (fake Hub, tiny runs and models) live in tests/, which the wheel leaves out;
    nothing it ships imports them."""
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    assert not [pattern for pattern in include if fnmatch.fnmatch("tests", pattern)], include
    shipped_users = sorted(path for path in imported_modules().get("tests", ()) if not path.startswith("tests/"))
    assert not shipped_users, f"shipped code imports the tests: {shipped_users}"


def test_every_third_party_import_is_declared():
    names = {normalise(req.name) for req in declared()}
    owners = packages_distributions()
    local = local_modules()
    undeclared = []
    for module, files in sorted(imported_modules().items()):
        if "." in module or module in sys.stdlib_module_names or module in local or module == "__future__":
            continue
        if {normalise(dist) for dist in owners.get(module, [])} & names:
            continue
        if module in THROUGH:
            provider = THROUGH[module]
            assert normalise(provider) in names, f"{module}: {provider} is not declared"
            dists = owners.get(module)
            if dists:  # installed: the provider must really require it
                wanted = {normalise(Requirement(r).name) for r in requires(provider) or []}
                assert {normalise(d) for d in dists} & wanted, f"{provider} does not require {dists} ({module})"
            continue
        undeclared.append(f"{module} ({', '.join(sorted(files)[:3])})")
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def read_pins() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)", line)
        assert match, f"constraints.txt: not a name==version pin: {line!r}"
        pins[normalise(match.group(1))] = match.group(2)
    return pins


def test_constraints_pin_every_declared_dependency_within_its_range():
    pins = read_pins()
    assert normalise(PYPROJECT["project"]["name"]) not in pins  # the project itself is never pinned
    for req in declared():
        version = pins.get(normalise(req.name))
        assert version is not None, f"constraints.txt does not pin {req.name}; run `make lock`"
        assert req.specifier.contains(version, prereleases=True), (
            f"constraints.txt pins {req.name}=={version}, outside pyproject.toml's {req}; run `make lock`"
        )
    # A local label (2.13.0+cpu) would make the file unusable for the CUDA build.
    labelled = {name: v for name, v in pins.items() if "+" in v}
    assert not labelled, f"pins with a local version label: {labelled}"


# ---------------------------------------------------------------- the Makefile's recipes
STUB_PYTHON = """#!/bin/bash
# Records every call; answers the index probe with $FAKE_PROBE_RC; plays `-m venv` and `pip freeze`.
echo "$*" >> "$FAKE_LOG"
case "$1 $2 $3" in
  "-m venv "*) mkdir -p "$3/bin" && cp "$0" "$3/bin/python" ;;
  "-m pip freeze"*) printf 'numpy==2.1.0\\ntorch==2.13.0+cpu\\nPyYAML==6.0.2\\n' ;;
  "-c "*) exit "${FAKE_PROBE_RC:-0}" ;;
esac
"""


def _stub(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def fake_machine(tmp_path):
    """Run a Makefile target against a stub venv; returns (output, recorded python calls)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    python = _stub(tmp_path / "venv" / "bin" / "python", STUB_PYTHON)
    log = tmp_path / "calls.log"

    def run(target: str, *args: str, gpu: bool, probe_ok: bool = True) -> tuple[str, list[str]]:
        _stub(tmp_path / "fakebin" / "nvidia-smi", f"#!/bin/sh\nexit {0 if gpu else 9}\n")
        log.write_text("")
        env = {
            **os.environ,
            "PATH": f"{tmp_path / 'fakebin'}:{os.environ['PATH']}",
            "FAKE_LOG": str(log),
            "FAKE_PROBE_RC": "0" if probe_ok else "1",
        }
        env.pop("TORCH_INDEX_URL", None)
        env.pop("MAKEFLAGS", None)
        proc = subprocess.run(
            ["make", "-s", "-B", "-C", str(REPO), target, f"VENV={tmp_path / 'venv'}", f"PYTHON={python}", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout + proc.stderr, log.read_text().splitlines()

    run.tmp_path = tmp_path
    run.stamp = str(tmp_path / "venv" / ".installed-stamp")
    return run


def _installs(calls: list[str]) -> tuple[str, str]:
    torch = [c for c in calls if c.startswith("-m pip install") and "torch" in c]
    project = [c for c in calls if c.startswith("-m pip install") and "-e .[dev]" in c]
    assert len(torch) == 1 and len(project) == 1, calls
    return torch[0], project[0]


def test_without_gpu_torch_comes_from_the_cpu_index_and_everything_is_constrained(fake_machine):
    _, calls = fake_machine(fake_machine.stamp, gpu=False)
    torch, project = _installs(calls)
    assert f"--extra-index-url {CPU_INDEX}" in torch
    want = next(r for r in declared() if r.name == "torch")
    assert str(want) in torch.split()  # torch's requirement is taken from pyproject.toml
    for call in (torch, project):
        assert "-c constraints.txt" in call
    assert calls.index(torch) < calls.index(project)  # torch first: the project cannot pick a build


def test_unreachable_cpu_index_is_left_out_with_a_note(fake_machine):
    output, calls = fake_machine(fake_machine.stamp, gpu=False, probe_ok=False)
    torch, _ = _installs(calls)
    assert "--extra-index-url" not in torch
    assert f"{CPU_INDEX} cannot be reached" in output
    assert any(call.startswith("-c ") and f"{CPU_INDEX}/torch/" in call for call in calls)


def test_with_gpu_torch_comes_from_pypi_unless_overridden(fake_machine):
    _, calls = fake_machine(fake_machine.stamp, gpu=True)
    torch, _ = _installs(calls)
    assert "--extra-index-url" not in torch
    assert not any(call.startswith("-c ") for call in calls)  # no index, nothing to probe

    _, calls = fake_machine(fake_machine.stamp, "TORCH_INDEX_URL=https://example.org/whl/cu126", gpu=True)
    torch, _ = _installs(calls)
    assert "--extra-index-url https://example.org/whl/cu126" in torch


def test_lock_writes_freeze_without_local_labels(fake_machine):
    out = fake_machine.tmp_path / "lock.txt"
    lock_venv = fake_machine.tmp_path / "lock-venv"
    _, calls = fake_machine("lock", f"CONSTRAINTS={out}", f"LOCK_VENV={lock_venv}", gpu=False)
    lines = out.read_text().splitlines()
    assert lines[0].startswith("#")
    assert lines[1:] == ["numpy==2.1.0", "torch==2.13.0", "PyYAML==6.0.2"]
    assert any(c.startswith("-m pip freeze") and "--exclude-editable" in c for c in calls)
    assert not lock_venv.exists()  # the throwaway venv is removed


def test_the_corpus_stage_imports_no_training_stack():
    """A worker that only cleans text installs the `corpus` extra: nothing it imports may need torch."""
    heavy = ("torch", "transformers", "datasets", "tokenizers", "sentencepiece", "sklearn", "matplotlib")
    code = (
        "import sys, pipeline.run, pipeline.contamination, pipeline.readers, pipeline.catalog; "
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
