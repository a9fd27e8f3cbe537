"""The static checks scripts/test.sh runs before the tests: that they see what they must.

The import contracts (import-linter, on grimp's graph) must count imports inside functions and under
`if TYPE_CHECKING:`, or most of today's provider-to-provider imports would pass unseen; scripts/check_deps.py must
name an imported package that pyproject.toml does not declare.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import grimp
import pytest

from tests.helpers import ROOT


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_the_import_graph_counts_imports_in_functions_and_for_type_checking(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, {
        "pkg_lazy/__init__.py": "",
        "pkg_lazy/a.py": """
            from typing import TYPE_CHECKING

            if TYPE_CHECKING:
                from pkg_lazy.c import C


            def late():
                from pkg_lazy.b import thing

                return thing
            """,
        "pkg_lazy/b.py": "thing = 1\n",
        "pkg_lazy/c.py": "class C: ...\n",
    })
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    graph = grimp.build_graph("pkg_lazy", cache_dir=None)
    assert graph.direct_import_exists(importer="pkg_lazy.a", imported="pkg_lazy.b")
    assert graph.direct_import_exists(importer="pkg_lazy.a", imported="pkg_lazy.c")
    sys.modules.pop("pkg_lazy", None)


def _check_deps():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        return importlib.import_module("check_deps")
    finally:
        sys.path.remove(str(ROOT / "scripts"))


def test_check_deps_names_an_import_that_only_arrives_through_another_package(tmp_path: Path) -> None:
    check_deps = _check_deps()
    _write(tmp_path, {
        "pyproject.toml": """
            [project]
            name = "x"
            dependencies = ["mcp==2.3.*"]
            [project.optional-dependencies]
            keyring = ["keyring>=24"]
            """,
        "hub/a.py": """
            import json

            import mcp
            from hub import b


            def late():
                import pydantic
                import keyring
            """,
        "hub/b.py": "",
    })
    problems = check_deps.missing(tmp_path)
    assert len(problems) == 1 and problems[0].startswith("pydantic (from pydantic) is imported by hub/a.py"), problems


def test_the_project_declares_what_it_imports() -> None:
    assert _check_deps().missing() == []
