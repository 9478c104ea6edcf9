"""The package as published: its declared dependencies are what it imports, its PyPI page links only to absolute URLs
of the repository's files, it carries the card template and the default recipe, and it names one Python version.

Imports are read from the source with `ast` (nothing is imported); import names become distribution names through
the installed distributions (`yaml` -> PyYAML).
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata, resources
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIR = REPO / "hf_crossenc"
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
# Declared but never imported by hf_crossenc: needed at run time through another package.
INDIRECT = {"jinja2": "huggingface_hub's ModelCard.from_template renders the model card with it"}
# Imported only inside functions that work without them; declared in an extra.
OPTIONAL = {"matplotlib": "plots", "faiss": "mining"}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return normalize(re.match(r"[A-Za-z0-9._-]+", requirement).group())


def third_party_imports(top_level_only: bool = False) -> dict[str, set[str]]:
    """Top-level module -> the files of the package importing it (neither the standard library nor hf_crossenc)."""
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body if top_level_only else ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for top in {name.partition(".")[0] for name in names} - set(sys.stdlib_module_names) - {"hf_crossenc"}:
                found.setdefault(top, set()).add(path.relative_to(REPO).as_posix())
    return found


def distribution(module: str) -> str:
    names = metadata.packages_distributions().get(module)
    assert names, f"{module}: imported by hf_crossenc but no installed distribution provides it"
    return normalize(names[0])


def core_dependencies() -> set[str]:
    return {requirement_name(r) for r in PROJECT["project"]["dependencies"]}


def test_every_import_is_declared_and_every_dependency_is_imported():
    imported = {distribution(module) for module in third_party_imports() if module not in OPTIONAL}
    assert sorted(imported - core_dependencies()) == [], "imported but not declared in [project] dependencies"
    assert sorted(core_dependencies() - imported - set(INDIRECT)) == [], "declared but never imported (nor needed indirectly)"


def test_optional_packages_are_extras_imported_inside_functions():
    extras = {name: {requirement_name(r) for r in reqs} for name, reqs in PROJECT["project"]["optional-dependencies"].items()}
    at_top = third_party_imports(top_level_only=True)
    for module, extra in OPTIONAL.items():
        assert distribution(module) not in core_dependencies()
        assert distribution(module) in extras[extra] and distribution(module) in extras["dev"]
        assert module not in at_top, f"{module} imported at module level by {at_top.get(module)}: the core needs it then"
    assert third_party_imports()["matplotlib"] == {"hf_crossenc/card_plots.py"}


def test_pypi_page_links_are_absolute_and_point_at_files_of_the_repository():
    project = PROJECT["project"]
    page = REPO / project["readme"]
    assert project["readme"] == "docs/pypi.md" and page.stat().st_size < 5000
    repository = project["urls"]["Repository"].rstrip("/")
    links = re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8"))
    assert links and [link for link in links if not link.startswith("https://")] == []
    for link in links:
        for kind in ("blob", "tree"):
            prefix = f"{repository}/{kind}/main/"
            if link.startswith(prefix):
                target = REPO / link[len(prefix) :].partition("#")[0]
                assert target.is_file() if kind == "blob" else target.is_dir(), f"{link}: no {target.relative_to(REPO)}"
    assert all(url.startswith(repository) for url in project["urls"].values())


def test_the_package_carries_the_card_template_and_the_default_recipe():
    from hf_crossenc.model_card import template_path

    package = resources.files("hf_crossenc")
    assert (package / "model_card_template.md").read_bytes() == (REPO / "model_card_template.md").read_bytes()
    assert (package / "recipes" / "stsb.yaml").read_bytes() == (REPO / "configs" / "stsb.yaml").read_bytes()
    assert template_path() == Path(str(package / "model_card_template.md"))
    data = PROJECT["tool"]["setuptools"]["package-data"]["hf_crossenc"]
    assert {"model_card_template.md", "recipes/*.yaml"} <= set(data)
    assert "hf_crossenc.recipes" in PROJECT["tool"]["setuptools"]["packages"]


def test_one_python_version_everywhere():
    project = PROJECT["project"]
    assert project["requires-python"] == ">=3.11" and sys.version_info >= (3, 11)
    assert PROJECT["tool"]["ruff"]["target-version"] == "py311"
    assert "Programming Language :: Python :: 3.11" in project["classifiers"]
    assert project["license"] == "Apache-2.0" and (REPO / "LICENSE").read_text(encoding="utf-8").lstrip().startswith("Apache License")
