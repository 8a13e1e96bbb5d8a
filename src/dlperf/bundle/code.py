"""The source files a rendering script runs: the script and every dlperf module it imports, directly or through
another dlperf module.

A figure, table or macro rule lists them as inputs (``render_code`` in rules/common.smk), so that Snakemake's
modification-time trigger redraws exactly the results whose drawing code changed: editing a plotting function
reruns the rules that import its module, and no other. (Snakemake itself does not compare a ``script:``'s text.)
The imports are read from the source (``ast``), not executed, and only ``dlperf`` modules are followed: a change of
an installed library is a change of environment, which provenance records.
"""
from __future__ import annotations

import ast
import importlib.util
from functools import lru_cache
from pathlib import Path

PACKAGE = "dlperf"


def code_files(script: str | Path) -> list[str]:
    """``script`` and the files of every ``dlperf`` module it imports, transitively, sorted after the script."""
    script = Path(script)
    seen: dict[str, Path] = {}
    pending = list(_imports(script))
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        path = _module_file(name)
        if path is None:
            continue
        seen[name] = path
        pending.extend(_imports(path, name))
    return [str(script)] + sorted({str(p) for p in seen.values()} - {str(script)})


@lru_cache(maxsize=None)
def _module_file(name: str) -> Path | None:
    """The source file of a dlperf module, found on disk without importing anything (importing a package runs its
    __init__, and a dry run must not import torch)."""
    spec = importlib.util.find_spec(PACKAGE)   # a top-level name: found, not imported
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*name.split(".")[1:])
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


@lru_cache(maxsize=None)
def _imports(path: Path, module: str | None = None) -> tuple[str, ...]:
    """The dlperf modules ``path`` imports; ``module`` (its dotted name) resolves relative imports. ``from a import
    b`` names both ``a`` and ``a.b`` (b may be a submodule); a package's ``__init__`` comes with each of its modules,
    since importing the module runs it."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = (module if path.name == "__init__.py" else module.rpartition(".")[0]) if module else None
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level and package:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            names.append(base)
            names += [f"{base}.{alias.name}" for alias in node.names]
    found = []
    for name in names:
        if name == PACKAGE or name.startswith(PACKAGE + "."):
            parts = name.split(".")
            found += [".".join(parts[:i]) for i in range(1, len(parts) + 1)]   # the packages' __init__ run too
    return tuple(dict.fromkeys(found))
