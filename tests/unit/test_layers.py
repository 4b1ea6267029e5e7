"""The shape of the code: tlcore has no import cycle, never imports streamlit, and the pages load without TensorFlow.

The layers themselves (what may import what) and the cycles are import-linter contracts in pyproject.toml, run here
so that the README's test command checks them; ruff runs here too. Imports inside functions count for the cycles
(grimp sees them): a cycle hidden in a function is still a cycle.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("tensorflow", "keras", "sklearn")   # what a page must not pull in when it loads


def test_import_contracts_hold():
    """The contracts in pyproject.toml, checked by import-linter: the layers of tlcore (nothing imports upward), no
    import cycle between its modules (function-local imports count), and no streamlit in tlcore."""
    lint_imports = str(Path(sys.executable).with_name("lint-imports"))
    result = subprocess.run([lint_imports, "--no-logo"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_finds_nothing():
    """ruff, with the rules chosen in pyproject.toml, on the whole tree."""
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


# -- pages: what runs when a view module is loaded ----------------------------------------------------------
def _module_file(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _load_time_imports(path: Path, package: str) -> set[str]:
    """What loading ``path`` always imports: its module-level import statements (also inside a top-level ``try``),
    not those in functions, in ``if TYPE_CHECKING:`` or in a page's conditional blocks (which run only when that
    part of the page is shown). ``from pkg import name`` yields ``pkg.name`` when that is a module."""
    found: set[str] = set()

    def walk(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parent + ([base] if base else []))
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names if _module_file(f"{base}.{alias.name}"))
            elif isinstance(node, ast.Try):
                walk(node.body + node.orelse + node.finalbody + [n for h in node.handlers for n in h.body])

    walk(ast.parse(path.read_text(encoding="utf-8")).body)
    return found


def _loaded_by(start: str) -> set[str]:
    """Every module loading ``start`` imports, following our own modules (views, tlcore) transitively."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _module_file(name)
        if path is None or name.split(".")[0] not in ("views", "tlcore"):
            continue
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]   # parent packages load first
        todo += sorted(_load_time_imports(path, package))
    return seen


@pytest.mark.parametrize("view", sorted(p.stem for p in (ROOT / "views").glob("*.py")))
def test_pages_load_without_tensorflow(view):
    loaded = _loaded_by(f"views.{view}")
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY or m == "tlcore.tf_env")
    assert not heavy, f"views/{view}.py loads {heavy} when it loads: import them inside the function that needs them"
