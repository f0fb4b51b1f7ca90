"""The extras (pyproject.toml) and infra/extras.py agree with each other and with the code:
every package the code imports comes with the base install or with the extra the table
names, and a CLI command whose extra is missing says which one to install."""
from __future__ import annotations

import ast
import sys
import tomllib
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from click.testing import CliRunner
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from infra.cli import main
from infra.extras import EXTRA_OF_MODULE, missing_extra

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("streams", "serving", "models", "index", "infra")
# Imported only where the code says it is optional, outside any extra: pyarrow (Parquet
# exports, infra/importing/readers.py asks for it) and pip (infra/vllm_env.py, run by
# `make vllm` with the interpreter that builds the vLLM venv). vllm lives in its own venv.
# pip and vllm: their own environments (vLLM: `make vllm`); the deployment checks' tools:
# .venv-deploy-check (infra/deploy/validate.py, pinned in infra/deploy/check-constraints.txt).
OUTSIDE_EXTRAS = {"pip", "vllm", "jsonschema", "kubernetes_validate", "yaml"}


def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def closure(requirements: list[str], extras_of_self: dict[str, list[str]]) -> set[str]:
    """Every installed distribution the requirements bring, transitively (markers as
    evaluated here); `hirestream[...]` expands to those extras of pyproject."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name == "hirestream":
            todo += [Requirement(r) for extra in req.extras for r in extras_of_self[extra]]
            continue
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            continue  # an extra this environment lacks ([gpu]): checked by name only
        for line in requires:
            sub = Requirement(line)
            env_extras = req.extras or {""}
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in env_extras):
                todo.append(sub)
    return seen


@lru_cache(maxsize=1)
def packages_distributions() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def modules_of(distributions: set[str]) -> set[str]:
    return {module for module, dists in packages_distributions().items()
            if any(canonicalize_name(d) in distributions for d in dists)}


def third_party_imports() -> dict[str, str]:
    """Top-level module -> one file that imports it, over the project's packages."""
    found: dict[str, str] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.partition(".")[0]
                    if top not in sys.stdlib_module_names and top not in PACKAGES:
                        found.setdefault(top, str(path.relative_to(REPO)))
    return found


def test_each_module_in_the_table_comes_with_the_extra_it_names():
    extras = project()["optional-dependencies"]
    wrong = {}
    for module, extra in EXTRA_OF_MODULE.items():
        assert extra in extras, f"{module}: no extra [{extra}] in pyproject.toml"
        if module not in packages_distributions():
            continue  # not installed here ([gpu] on a machine without CUDA)
        if module not in modules_of(closure(extras[extra], extras)):
            wrong[module] = extra
    assert not wrong, f"these modules do not come with the extra infra/extras.py names: {wrong}"


def test_every_package_the_code_imports_is_in_the_base_install_or_in_the_table():
    spec = project()
    base = modules_of(closure(spec["dependencies"], spec["optional-dependencies"]))
    unplaced = {module: where for module, where in third_party_imports().items()
                if module not in base and module not in EXTRA_OF_MODULE and module not in OUTSIDE_EXTRAS}
    assert not unplaced, ("imported, but neither the base install nor infra/extras.py provides them "
                          f"(add the package to an extra and the module to the table): {unplaced}")


def test_the_base_install_is_the_producers_and_clients_only():
    spec = project()
    base = modules_of(closure(spec["dependencies"], spec["optional-dependencies"]))
    assert {"pydantic", "pydantic_settings", "kafka", "click"} <= base
    assert not base & {"torch", "faust", "numpy", "fastapi", "rocksdict"}, base & {"torch", "faust", "numpy"}


def test_a_command_whose_extra_is_missing_names_the_extra(monkeypatch):
    # None in sys.modules: `import mode` raises ModuleNotFoundError, as in a base install.
    monkeypatch.setitem(sys.modules, "mode", None)
    monkeypatch.setitem(sys.modules, "mode.loop", None)
    monkeypatch.setitem(sys.modules, "faust", None)
    worker = CliRunner().invoke(main, ["worker"])
    serve = CliRunner().invoke(main, ["serve"])
    assert worker.exit_code == 1, worker.output
    assert "`hirestream worker`: needs mode" in worker.output
    assert "pip install 'hirestream[worker]'" in worker.output
    assert serve.exit_code == 1 and "pip install 'hirestream[serving]'" in serve.output, serve.output


def test_a_module_no_extra_provides_is_a_plain_error_not_an_install_hint():
    err = ModuleNotFoundError("No module named 'streams.nonexistent'", name="streams.nonexistent")
    assert missing_extra(err, "worker") is None
    assert missing_extra(ModuleNotFoundError("x", name="torch.nn"), "import").extra == "models"
    assert missing_extra(ModuleNotFoundError("x", name="numpy"), "train").extra == "all"


def test_importing_the_client_the_producer_and_the_cli_loads_no_extra():
    """Here the extras are installed: look at what the base install's modules import
    (tests/test_base_install.py runs them where the extras are absent)."""
    import subprocess

    code = ("import sys, serving.client, streams.producer, streams.settings, infra.cli; "
            "print(sorted({m.partition('.')[0] for m in sys.modules} & set(EXTRA_OF_MODULE)))")
    out = subprocess.run([sys.executable, "-c", "from infra.extras import EXTRA_OF_MODULE; " + code], cwd=REPO,
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
