"""Check that every third-party package the code imports is declared in pyproject.toml.

Reads every import in hub/, connectors/, tools/ and clients/ (module level and inside functions alike), drops the
standard library and our own packages, maps each top-level module to the distribution that installs it, and fails
naming the module and the file when no requirement in [project.dependencies] or an extra names that distribution.
A package that arrives only because another one depends on it (pydantic through mcp) counts as undeclared: the day
that dependency drops it, our import breaks. It says nothing about requirements nobody imports (uvloop is picked
up by uvicorn, not imported). Run from scripts/test.sh before the tests; exits 1 when something is missing.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("hub", "connectors", "tools", "clients")


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(pyproject: Path) -> set[str]:
    """The distribution names that [project.dependencies] and the extras require, normalized."""
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        requirements.extend(extra)
    return {_normalize(re.match(r"[A-Za-z0-9._-]+", req.strip()).group(0)) for req in requirements}


def imported(root: Path) -> dict[str, set[str]]:
    """Top-level module name -> the files that import it, for every absolute import under SOURCES."""
    found: dict[str, set[str]] = {}
    for source in SOURCES:
        for path in sorted((root / source).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(root)))
    return found


def missing(root: Path = ROOT) -> list[str]:
    """One line per imported third-party module whose distribution no requirement names."""
    wanted = declared(root / "pyproject.toml")
    distributions = importlib.metadata.packages_distributions()
    problems = []
    for module, files in sorted(imported(root).items()):
        if module in sys.stdlib_module_names or module in SOURCES or module == "__future__":
            continue
        # A module of a package that is not installed here (an optional extra) is taken to be its own distribution.
        names = {_normalize(d) for d in distributions.get(module, [module])}
        if not names & wanted:
            problems.append(f"{module} (from {', '.join(sorted(names))}) is imported by {', '.join(sorted(files))} "
                            "but pyproject.toml declares none of those distributions")
    return problems


def main() -> int:
    problems = missing()
    for line in problems:
        print(f"check_deps: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
