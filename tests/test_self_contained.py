"""The repository is self-contained: nothing in it reads outside it.

A fresh ``git clone`` + ``make test`` must pass with nothing beside the
checkout, so no test, loader, benchmark, script, doc or build file may point
at a sibling folder, a machine-specific absolute path or an environment
variable that redirects fixtures elsewhere. Two kinds of check:

* static: every tracked (or new, not ignored) text file is scanned for such
  references, and every Python module's path arithmetic on ``__file__``
  (``parents[N]``, ``.parent``, ``os.path.dirname``, ``/ ".."``) is followed
  to make sure it stays inside the repository root;
* runtime: every fixture path the loaders resolve (symlinks followed,
  ``$ref`` targets included) lies inside the repository, every sample has a
  source row in ``tests/fixtures/README.md``, and the loaders refuse paths
  that climb out.

The upstream samples in ``tests/fixtures/`` are data written by others and
are not scanned for references (their README is ours and is).
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest

from tests.fixtures import FIXTURES, fixture_path, resolve_refs

REPO = Path(__file__).resolve().parents[1]
SELF = PurePosixPath(Path(__file__).resolve().relative_to(REPO).as_posix())
# Spelled out, not derived from FIXTURES: test_fixtures_live_in_the_repository
# checks that the loaders agree.
FIXTURE_DIR = PurePosixPath("tests/fixtures")

# Text references that point outside the repository. Each is (name, regex).
# This module spells them out, so it is exempt from the text scan (only);
# its own path arithmetic is still checked.
OUTSIDE_REFERENCES = [
    ("sibling shared/ folder", re.compile(r"(?<![\w.-])\.\./+shared\b")),
    (
        "reference folder shared/",
        re.compile(r"(?<![\w-])shared/+(?:fixtures|DESIGN\.md|STYLE\.md|hooks)\b"),
    ),
    ("path component 'shared'", re.compile(r"/\s*[\"']shared[\"']")),
    ("machine path /work/", re.compile(r"(?<![\w.-])/work/")),
    ("home directory", re.compile(r"(?<![\w.-])/(?:home|Users)/[\w.-]+/|(?<![\w.-])/root/")),
    ("fixtures redirect variable", re.compile(r"CLOUDSYNC_FIXTURES")),
]
# A run of "../" in a non-Python file (markdown links, shell, Makefile):
# outside the repository if it climbs more levels than the file is deep.
_UP = re.compile(r"(?<![\w.])((?:\.\./)+)")

# Python callables that return (a path to) their first argument unchanged.
_SAME_PATH = {
    "Path",
    "pathlib.Path",
    "PurePath",
    "pathlib.PurePath",
    "PurePosixPath",
    "os.path.abspath",
    "os.path.realpath",
    "os.path.normpath",
    "os.fspath",
    "str",
}
_SAME_PATH_METHODS = {"resolve", "absolute", "expanduser"}
_JOINS = {"os.path.join"}


# -- which files -------------------------------------------------------------
def _repo_files() -> list[PurePosixPath]:
    """Tracked files plus new ones not ignored (so a bad reference is caught
    before it is committed); a copy without ``.git`` is walked instead."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout.decode()
        names = {n for n in out.split("\0") if n}
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", "__pycache__", "var", ".pytest_cache", ".ruff_cache"}
        names = set()
        for root, dirs, files in os.walk(REPO):
            dirs[:] = [d for d in dirs if d not in skip and not d.endswith(".egg-info")]
            names.update(Path(root, f).relative_to(REPO).as_posix() for f in files)
    return sorted(PurePosixPath(n) for n in names if (REPO / n).is_file())


def _is_upstream_sample(rel: PurePosixPath) -> bool:
    return rel.is_relative_to(FIXTURE_DIR) and rel != FIXTURE_DIR / "README.md"


def _text(rel: PurePosixPath) -> str | None:
    data = (REPO / rel).read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _scanned_files() -> Iterator[tuple[PurePosixPath, str]]:
    for rel in _repo_files():
        if _is_upstream_sample(rel):
            continue
        text = _text(rel)
        if text is not None:
            yield rel, text


# -- text references -----------------------------------------------------------
def text_findings(rel: PurePosixPath, text: str) -> list[str]:
    """References to places outside the repository in one file's text."""
    found = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for name, pattern in OUTSIDE_REFERENCES:
            if pattern.search(line):
                found.append(f"{rel}:{lineno}: {name}: {line.strip()}")
        if rel.suffix != ".py":
            depth = len(rel.parts) - 1  # directories between the repo root and the file
            for match in _UP.finditer(line):
                if match.group(1).count("../") > depth:
                    found.append(f"{rel}:{lineno}: climbs above the repository: {line.strip()}")
    return found


# -- Python path arithmetic ----------------------------------------------------
def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


class _PathLevels:
    """Follows expressions derived from ``__file__`` as a *level*: the number
    of path components below the repository root (the root itself is 0, the
    file ``tests/x.py`` is 2). A level below 0, at any step, is outside."""

    def __init__(self, rel: PurePosixPath) -> None:
        self.file_level = len(rel.parts)
        self.names: dict[str, int] = {}
        self.problems: dict[tuple[int, int], str] = {}

    def _flag(self, node: ast.AST, why: str) -> None:
        self.problems.setdefault((node.lineno, node.col_offset), why)

    def _walk(self, node: ast.AST, level: int, parts: list[ast.expr]) -> int:
        """Join ``parts`` onto a path at ``level``."""
        for part in parts:
            if isinstance(part, ast.Constant) and isinstance(part.value, str):
                if part.value.startswith("/"):
                    self._flag(node, f"joins the absolute path {part.value!r}")
                for piece in part.value.split("/"):
                    if piece == "..":
                        level -= 1
                        if level < 0:
                            self._flag(node, "'..' climbs above the repository root")
                    elif piece not in ("", "."):
                        level += 1
            else:
                level += 1  # a name computed at run time: one component down
        return level

    def level(self, node: ast.AST) -> int | None:
        """The level ``node`` points at, or None if not derived from ``__file__``."""
        result: int | None = None
        if isinstance(node, ast.Name):
            result = self.file_level if node.id == "__file__" else self.names.get(node.id)
        elif isinstance(node, ast.Attribute) and node.attr == "parent":
            base = self.level(node.value)
            result = None if base is None else base - 1
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "parents"
        ):
            base = self.level(node.value.value)
            if base is not None:
                index = node.slice
                if isinstance(index, ast.Constant) and isinstance(index.value, int):
                    result = base - 1 - index.value if index.value >= 0 else -1
                else:
                    self._flag(node, "parents[...] with a computed index cannot be checked")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            base = self.level(node.left)
            result = None if base is None else self._walk(node, base, [node.right])
        elif isinstance(node, ast.Call):
            func = node.func
            name = _dotted(func)
            if isinstance(func, ast.Attribute) and func.attr in _SAME_PATH_METHODS:
                result = self.level(func.value)
            elif isinstance(func, ast.Attribute) and func.attr == "joinpath":
                base = self.level(func.value)
                result = None if base is None else self._walk(node, base, node.args)
            elif name in _SAME_PATH and node.args:
                base = self.level(node.args[0])
                result = None if base is None else self._walk(node, base, node.args[1:])
            elif name in _JOINS and node.args:
                base = self.level(node.args[0])
                result = None if base is None else self._walk(node, base, node.args[1:])
            elif name == "os.path.dirname" and node.args:
                base = self.level(node.args[0])
                result = None if base is None else base - 1
        if result is not None and result < 0:
            self._flag(node, "climbs above the repository root")
        return result


def python_findings(rel: PurePosixPath, source: str) -> list[str]:
    """Path arithmetic on ``__file__`` in one module that leaves the repository."""
    tree = ast.parse(source, filename=str(rel))
    levels = _PathLevels(rel)
    assigns = sorted(
        (n for n in ast.walk(tree) if isinstance(n, ast.Assign | ast.AnnAssign)),
        key=lambda n: (n.lineno, n.col_offset),
    )
    for node in assigns:  # module constants like HERE = Path(__file__).parent
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if node.value is None:
            continue
        value = levels.level(node.value)
        for target in targets:
            if isinstance(target, ast.Name) and value is not None:
                levels.names[target.id] = value
    for node in ast.walk(tree):
        levels.level(node)
    return [f"{rel}:{line}: {why}" for (line, _), why in sorted(levels.problems.items())]


# -- static tests --------------------------------------------------------------
def test_no_file_refers_outside_the_repository() -> None:
    findings: list[str] = []
    scanned = 0
    for rel, text in _scanned_files():
        scanned += 1
        if rel != SELF:
            findings += text_findings(rel, text)
        if rel.suffix == ".py":
            findings += python_findings(rel, text)
    assert scanned > 100, scanned  # the scan saw the repository, not an empty list
    assert not findings, "references outside the repository:\n" + "\n".join(findings)


def test_the_scan_covers_every_kind_of_file() -> None:
    """Tests, loaders, benchmarks, scripts, docs and build/CI files are all
    scanned, and the upstream samples are the only thing left out."""
    scanned = {rel for rel, _ in _scanned_files()}
    for expected in (
        "tests/fixtures.py",
        "tests/fixtures/README.md",
        "tests/drivers/test_aws_fixtures.py",
        "tests/drivers/test_openstack_fixture_sweep.py",
        "bench/ingest.py",
        "scripts/check_redis.py",
        "docs/architecture.md",
        "README.md",
        "Makefile",
        ".ci/run",
        "pyproject.toml",
    ):
        assert PurePosixPath(expected) in scanned, expected
    assert not any(_is_upstream_sample(rel) for rel in scanned)


@pytest.mark.parametrize(
    ("rel", "text"),
    [
        ("tests/x.py", 'FIX = Path("..") / "sh' + 'ared" / "fixtures"'),
        ("README.md", "see `../sh" + "ared/DESIGN.md`"),
        ("docs/a.md", "follows `sh" + "ared/DESIGN.md`"),
        ("bench/x.py", 'open("/wo' + 'rk/main/data.json")'),
        ("scripts/x.py", 'open("/ho' + 'me/alice/data.json")'),
        ("tests/x.py", 'os.environ.get("CLOUDSYNC_' + 'FIXTURES")'),
        ("docs/a.md", "[design](../../DESIGN.md)"),
        ("Makefile", "include ../../common.mk"),
    ],
)
def test_text_scan_catches(rel: str, text: str) -> None:
    assert text_findings(PurePosixPath(rel), text)


@pytest.mark.parametrize(
    ("rel", "text"),
    [
        ("docs/api.md", "[README](../README.md#connecting)"),
        (".ci/run", 'cd "$(dirname "$0")/.."'),
        ("bench/README.md", "python -m bench.fullsync --profile /tmp/prof"),
        ("sync/admin/common.py", '"""Shared admin pieces."""'),
    ],
)
def test_text_scan_passes(rel: str, text: str) -> None:
    assert text_findings(PurePosixPath(rel), text) == []


@pytest.mark.parametrize(
    ("rel", "source"),
    [
        ("tests/fixtures.py", 'F = Path(__file__).resolve().parents[2] / "x"'),
        ("tests/drivers/t.py", "F = Path(__file__).parents[3]"),
        ("tests/t.py", "F = Path(__file__).parent.parent.parent"),
        ("tests/t.py", "F = Path(__file__).parents[-1]"),
        ("tests/t.py", 'HERE = Path(__file__).resolve().parent\nF = HERE / ".." / ".." / "x"'),
        (
            "tests/t.py",
            "F = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))",
        ),
        ("tests/t.py", 'F = os.path.join(os.path.dirname(__file__), "../../x")'),
        ("tests/t.py", 'ROOT = Path(__file__).parents[1]\nF = ROOT.joinpath("..", "x")'),
        ("tests/t.py", "F = Path(__file__).parents[i]"),
    ],
)
def test_path_arithmetic_check_catches(rel: str, source: str) -> None:
    assert python_findings(PurePosixPath(rel), source)


@pytest.mark.parametrize(
    ("rel", "source"),
    [
        ("tests/fixtures.py", 'F = Path(__file__).resolve().parent / "fixtures"'),
        ("tests/drivers/t.py", "ROOT = Path(__file__).resolve().parents[2]"),
        ("project/settings.py", "BASE_DIR = Path(__file__).resolve().parent.parent"),
        ("tests/t.py", 'F = Path(__file__).parent / ".." / "sync"'),
        ("tests/t.py", "F = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))"),
        ("tests/t.py", "F = Path(x).parents[5]"),
    ],
)
def test_path_arithmetic_check_passes(rel: str, source: str) -> None:
    assert python_findings(PurePosixPath(rel), source) == []


# -- runtime: where the loaders actually read ------------------------------------
def _fixture_files() -> list[Path]:
    return sorted(p for p in FIXTURES.rglob("*") if p.is_file())


def _refs(obj: object) -> Iterator[str]:
    if isinstance(obj, dict):
        if isinstance(obj.get("$ref"), str):
            yield obj["$ref"]
        for value in obj.values():
            yield from _refs(value)
    elif isinstance(obj, list):
        for item in obj:
            yield from _refs(item)


def test_fixtures_live_in_the_repository() -> None:
    assert FIXTURES == REPO / FIXTURE_DIR
    assert FIXTURES.is_dir() and FIXTURES.resolve().is_relative_to(REPO)
    assert len(_fixture_files()) > 250


def test_every_fixture_path_the_loaders_resolve_is_inside_the_repository() -> None:
    """Symlinks are followed: a fixture linked to a file elsewhere fails here."""
    files = _fixture_files()
    for path in files:
        rel = path.relative_to(FIXTURES)
        resolved = fixture_path(rel)
        assert resolved.is_relative_to(REPO), (rel, resolved)
        assert path.resolve() == resolved
    refs = 0
    for path in files:
        if path.suffix != ".json" or "nova-versioned" not in path.parts:
            continue
        for ref in _refs(json.loads(path.read_text("utf-8"))):
            target = (path.parent / ref.partition("#")[0]).resolve()
            assert target.is_relative_to(FIXTURES) and target.is_file(), (path, ref)
            refs += 1
    assert refs > 100, refs


def test_loaders_refuse_paths_that_leave_the_fixtures() -> None:
    with pytest.raises(ValueError, match="leaves"):
        fixture_path("../fixtures.py")
    with pytest.raises(ValueError, match="leaves"):
        fixture_path(REPO / "README.md")
    with pytest.raises(ValueError, match="leaves"):
        resolve_refs({"$ref": "../../../README.md#"}, FIXTURES / "nova-versioned")


# -- every sample has its source documented -------------------------------------
def _readme_rows() -> tuple[dict[str, str], dict[str, str]]:
    """(sample path -> source repository, repository -> licence) from the README."""
    readme = (FIXTURES / "README.md").read_text("utf-8")
    licences = dict(
        re.findall(r"^\| ([\w.-]+/[\w.-]+) \| [0-9a-f]{40} \| ([^|]+?) \|", readme, re.MULTILINE)
    )
    sources: dict[str, str] = {}
    section = None
    for line in readme.splitlines():
        heading = re.match(r"^### ([\w-]+)/$", line)
        if heading:
            section = heading.group(1)
            continue
        row = re.match(r"^\| (\S+) \| ([\w.-]+/[\w.-]+) \| (\S+) \| ([0-9a-f]{12}) \|", line)
        if section and row and row.group(1) != "file":
            sources[f"{section}/{row.group(1)}"] = row.group(2)
    return sources, licences


def test_every_sample_has_a_source_row_and_a_licence() -> None:
    sources, licences = _readme_rows()
    on_disk = {p.relative_to(FIXTURES).as_posix() for p in _fixture_files()} - {"README.md"}
    assert on_disk == set(sources), {
        "no README row": sorted(on_disk - set(sources)),
        "row without file": sorted(set(sources) - on_disk),
    }
    for rel, repo in sources.items():
        assert licences.get(repo, "").strip(), f"{rel}: no licence for {repo}"
