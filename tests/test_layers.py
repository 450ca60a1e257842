"""The layers hold: the core imports no stage, the stages never import the chain or the command, ensemble and
saliency import preprocessing only to decode media, and each layout file name is spelled in one module."""

import ast
import functools
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STAGES = ("preprocess", "modalities", "ensemble", "saliency")


def imported_modules(folder: Path) -> dict[str, set[str]]:
    """Source file -> every module it imports (absolute names; relative imports are within its package)."""
    found = {}
    for path in folder.rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
        found[str(path.relative_to(REPO))] = names
    return found


def test_the_core_imports_no_stage_and_nothing_above_it() -> None:
    for path, names in imported_modules(REPO / "gvs" / "core").items():
        assert not {n for n in names if n.split(".")[0] in STAGES or n in ("gvs.cli", "gvs.chain")}, path


def test_ray_stays_out_of_the_core_and_the_engine_imports_no_stage() -> None:
    """gvs.engine (the Ray actor pool) sits between the stages and the core: the core never imports it or Ray."""
    for path, names in imported_modules(REPO / "gvs" / "core").items():
        assert not {n for n in names if n.split(".")[0] == "ray" or n.startswith("gvs.engine")}, path
    for path, names in imported_modules(REPO / "gvs" / "engine").items():
        assert not {n for n in names if n.split(".")[0] in STAGES or n.startswith(("gvs.cli", "gvs.chain"))}, path


@pytest.mark.parametrize("stage", STAGES)
def test_stages_never_import_prediction_the_chain_or_the_command(stage: str) -> None:
    for path, names in imported_modules(REPO / stage).items():
        assert not {
            n for n in names if n.startswith(("gvs.cli", "gvs.chain", "gvs.predict", "gvs.report", "gvs.serve"))
        }, path


def test_prediction_never_imports_the_chain_or_the_command() -> None:
    for path, names in imported_modules(REPO / "gvs" / "predict").items():
        assert not {n for n in names if n.startswith(("gvs.cli", "gvs.chain"))}, path


@pytest.mark.parametrize("stage", ("ensemble", "saliency"))
def test_ensemble_and_saliency_use_preprocessing_only_to_decode_media(stage: str) -> None:
    for path, names in imported_modules(REPO / stage).items():
        assert {n for n in names if n.startswith("preprocess")} <= {"preprocess.decode"}, path


@pytest.mark.parametrize(
    "name",
    [
        "model.keras",
        "predictions.csv",
        "clips.csv",
        "fusion.json",
        "partition.json",
        "scaler.npz",
        "config.json",
        "metrics.json",
        "current.json",
        "source.json",
    ],
)
def test_each_layout_file_name_is_spelled_in_one_module(name: str) -> None:
    spelled = [
        p
        for p in REPO.glob("**/*.py")
        if ".venv" not in p.parts and p != Path(__file__) and f'"{name}"' in p.read_text()
    ]
    assert [str(p.relative_to(REPO)) for p in spelled] == ["gvs/core/workspace.py"]


def test_every_cli_module_offers_examples() -> None:
    for path in [
        REPO / "preprocess" / "cli.py",
        REPO / "saliency" / "cli.py",
        REPO / "modalities" / "cli.py",
        REPO / "gvs" / "predict" / "cli.py",
    ]:
        assert re.search(r"^examples:$", path.read_text(), re.M), path


# Issue 30: library code changes no process-wide state and parses no arguments. Command modules (cli.py, *_cli.py,
# __main__.py, run_ensemble.py) parse arguments; gvs.core.command holds what they share, set_up_process included.
LIBRARY_FOLDERS = ("gvs", *STAGES)


def _is_command_module(relative: str) -> bool:
    name = Path(relative).name
    return name in ("cli.py", "__main__.py", "run_ensemble.py") or name.endswith("_cli.py")


ENTRY_POINT_HELPERS = {"gvs/core/command.py"}


@functools.cache
def library_sources() -> dict[str, ast.Module]:
    """Every Python source of the product (not tests, not benchmarks) by its path from the repository root."""
    paths = [p for folder in LIBRARY_FOLDERS for p in (REPO / folder).rglob("*.py")] + [REPO / "run_ensemble.py"]
    return {str(p.relative_to(REPO)): ast.parse(p.read_text()) for p in paths}


def _is_environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ"
    )


def environ_writes(tree: ast.Module) -> list[int]:
    """Lines that write os.environ: ``os.environ[...] = / del``, setdefault, update, pop, clear, os.putenv."""
    lines = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, (ast.Assign, ast.Delete)):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        if any(isinstance(t, ast.Subscript) and _is_environ(t.value) for t in targets):
            lines.append(node.lineno)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method, owner = node.func.attr, node.func.value
            writes = method in ("setdefault", "update", "pop", "popitem", "clear", "__setitem__") and _is_environ(owner)
            if writes or (method in ("putenv", "unsetenv") and isinstance(owner, ast.Name) and owner.id == "os"):
                lines.append(node.lineno)
    return lines


def matplotlib_uses(tree: ast.Module) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "use"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in ("matplotlib", "mpl")
    ]


def imports_argparse(tree: ast.Module) -> bool:
    return any(
        (isinstance(node, ast.Import) and any(a.name == "argparse" for a in node.names))
        or (isinstance(node, ast.ImportFrom) and node.module == "argparse")
        for node in ast.walk(tree)
    )


# Environment writes left in library code, each a remaining issue-30 item: gvs.core.cluster.limit_threads sets the
# OpenMP/BLAS thread counts of a pool worker or Ray actor (one write, in a loop), and preprocess.faces sets
# OMP_WAIT_POLICY before yuface loads its OpenMP. How many writes each file may hold:
ENVIRON_WRITES_LEFT = {"gvs/core/cluster.py": 1, "preprocess/faces.py": 1}


def test_only_entry_points_write_the_environment() -> None:
    found = {
        path: lines
        for path, tree in library_sources().items()
        if (lines := environ_writes(tree))
        and not _is_command_module(path)
        and path not in ENTRY_POINT_HELPERS
        and len(lines) != ENVIRON_WRITES_LEFT.get(path)
    }
    assert not found, f"library modules that write os.environ (file: lines): {found}"


def test_only_entry_points_choose_the_matplotlib_backend() -> None:
    found = {
        path: lines
        for path, tree in library_sources().items()
        if (lines := matplotlib_uses(tree)) and not _is_command_module(path)
    }
    assert not found, f"library modules that call matplotlib.use (file: lines): {found}"


def test_only_command_modules_parse_arguments() -> None:
    found = [
        path
        for path, tree in library_sources().items()
        if imports_argparse(tree) and not _is_command_module(path) and path not in ENTRY_POINT_HELPERS
    ]
    assert not found, f"library modules that import argparse: {found}"


def test_the_checks_see_what_they_look_for() -> None:
    tree = ast.parse(
        "import os, argparse\nimport matplotlib\nos.environ['A'] = '1'\nos.environ.setdefault('B', '2')\n"
        "del os.environ['A']\nmatplotlib.use('Agg')\nos.environ.get('C')\nx = os.environ['D']\n"
    )
    assert sorted(environ_writes(tree)) == [3, 4, 5]
    assert matplotlib_uses(tree) == [6] and imports_argparse(tree)


def _parameters(function: ast.FunctionDef | ast.AsyncFunctionDef, method: bool) -> list[str]:
    arguments = function.args
    names = [a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)]
    names += [a.arg for a in (arguments.vararg, arguments.kwarg) if a is not None]
    static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in function.decorator_list)
    return names[1:] if method and not static and names[:1] in (["self"], ["cls"]) else names


def functions_without_parameters_section(tree: ast.Module) -> list[str]:
    """Public functions and methods of ``tree`` that take parameters and whose docstring has no Parameters section."""
    functions = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            functions.append((node.name, node, False))
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            functions += [
                (f"{node.name}.{f.name}", f, True)
                for f in node.body
                if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
            ]
    return [
        f"{name} (line {function.lineno})"
        for name, function, method in functions
        if not name.split(".")[-1].startswith("_")
        and _parameters(function, method)
        and "Parameters\n----------" not in (ast.get_docstring(function) or "")
    ]


def test_public_stage_functions_document_their_parameters() -> None:
    """Every public function of preprocess/, modalities/, ensemble/ and saliency/ that takes parameters has a numpydoc
    "Parameters" section in its docstring (and, by convention, "Returns" with the shapes of the arrays it returns).

    - public: a module-level function whose name does not start with "_", or a method whose name does not start
      with "_" of a module-level class whose name does not start with "_" (constructors: their class's docstring);
    - with parameters: any besides self (methods) and cls (class methods); a function without needs no section;
    - every .py module of the four folders is read except the command modules (cli.py, __main__.py), whose
      functions are argparse wiring: their contract is the command's --help.
    """
    missing = {
        path: names
        for path, tree in library_sources().items()
        if path.split("/")[0] in STAGES
        and not _is_command_module(path)
        and (names := functions_without_parameters_section(tree))
    }
    assert not missing, "public functions without a numpydoc Parameters section:\n" + "\n".join(
        f"{path}: {', '.join(names)}" for path, names in missing.items()
    )


def test_the_docstring_check_sees_what_it_looks_for() -> None:
    tree = ast.parse(
        'def a(x):\n    """A."""\n'
        'def b(x):\n    """B.\n\n    Parameters\n    ----------\n    x : int\n    """\n'
        "def c():\n    pass\n"
        "def _d(x):\n    pass\n"
        "class E:\n    def f(self):\n        pass\n    def g(self, y):\n        pass\n"
        "    @staticmethod\n    def h(z):\n        pass\n    def _i(self, y):\n        pass\n"
        "class _J:\n    def k(self, y):\n        pass\n"
    )
    assert functions_without_parameters_section(tree) == ["a (line 1)", "E.g (line 17)", "E.h (line 20)"]
