"""The code's layout stays true: imports flow one way between layers, pieces stay short,
every package says what it owns, and the README's folder map names every package."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchscore.settings import REPO_ROOT

# Lowest first. A component imports only itself and components of strictly lower rank.
LAYERS: dict[str, int] = {
    "batchscore.errors": 0,
    "batchscore.settings": 1,
    "batchscore.telemetry": 2,
    "batchscore.storage": 3,
    "batchscore.compute": 3,
    # feature definitions import nothing of batchscore; training (models) and scoring call them
    "features": 3,
    # metrics against labels, pure numpy: model cards (models) and realized performance (quality)
    "batchscore.model_metrics": 3,
    "batchscore.models": 4,
    "batchscore.quality": 4,
    "batchscore.examples": 5,
    "jobs": 6,
    "batchscore.authoring": 6,
    "batchscore.orchestration": 7,
    "batchscore.serving": 7,
    "batchscore.cli": 8,
    "dags": 9,
}
CODE_ROOTS = ("batchscore", "jobs", "features", "dags")
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 450


def modules() -> Iterator[tuple[str, Path]]:
    for root in CODE_ROOTS:
        for path in sorted((REPO_ROOT / root).rglob("*.py")):
            parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            yield ".".join(parts), path


def component(module: str) -> str | None:
    """The layer a module belongs to, or None for third-party and standard-library modules."""
    parts = module.split(".")
    if parts[0] in ("jobs", "features", "dags"):
        return parts[0]
    if parts[0] != "batchscore":
        return None
    if len(parts) == 1:
        return "batchscore"
    return f"batchscore.{parts[1]}"


def imports_of(module: str, path: Path) -> Iterator[tuple[int, str]]:
    """Every module `path` imports, lazy (inside functions) and TYPE_CHECKING ones included."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield node.lineno, base
            for alias in node.names:  # `from batchscore.models import registry` names a module
                yield node.lineno, f"{base}.{alias.name}"


def test_every_module_belongs_to_a_layer():
    orphans = [m for m, _ in modules() if component(m) not in LAYERS and m != "batchscore"]
    assert not orphans, f"add these to a layer in LAYERS (and the README's map): {orphans}"


def test_imports_flow_down_the_layers():
    wrong = []
    for module, path in modules():
        own = component(module)
        if own not in LAYERS:
            continue
        for line, target in imports_of(module, path):
            theirs = component(target)
            if theirs is None or theirs == own:
                continue
            if theirs == "batchscore" or LAYERS[theirs] >= LAYERS[own]:
                wrong.append(f"{path.relative_to(REPO_ROOT)}:{line} ({own}) imports {target} ({theirs})")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_no_job_imports_another_job():
    """A job is one stage: it may use the `jobs` package (its argument parser) and the library,
    never another job; code two jobs share belongs in `batchscore/`."""
    jobs = {m for m, _ in modules() if component(m) == "jobs" and m != "jobs"}
    wrong = set()
    for module, path in modules():
        if module not in jobs:
            continue
        for line, target in imports_of(module, path):
            # `from jobs import print_result` names a function of the package, not a job
            job = ".".join(target.split(".")[:2])
            if job in jobs and job != module:
                wrong.add(f"{path.relative_to(REPO_ROOT)}:{line} imports {job}")
    assert not wrong, "jobs import other jobs; move what they share into batchscore/:\n" + "\n".join(
        sorted(wrong)
    )


def test_no_import_cycles_between_modules():
    names = {m for m, _ in modules()}
    graph: dict[str, set[str]] = {}
    for module, path in modules():
        graph[module] = {t for _, t in imports_of(module, path) if t in names and t != module}
    # a package's __init__ importing its own modules is not a cycle of concerns
    for module in graph:
        graph[module] = {t for t in graph[module] if not (module.startswith(t + ".") and t in graph)}
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*trail[trail.index(target) :], target]))
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_every_package_says_what_it_owns():
    for init in sorted((REPO_ROOT / "batchscore").rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc.split()) >= 15, f"{init.relative_to(REPO_ROOT)} needs a docstring paragraph"


@pytest.mark.parametrize("root", CODE_ROOTS)
def test_pieces_stay_short(root):
    long = []
    for module, path in modules():
        if not module.startswith(root):
            continue
        source = path.read_text()
        if source.count("\n") > MAX_MODULE_LINES:
            long.append(f"{path.relative_to(REPO_ROOT)}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} {node.name}: {size} lines")
    assert not long, "split these:\n" + "\n".join(long)


def test_the_readme_map_names_every_package():
    readme = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"## What each folder owns\n(.*?)\n## ", readme, re.S)
    assert block, "README.md lost its 'What each folder owns' section"
    packages = sorted(
        p.parent.relative_to(REPO_ROOT).as_posix() + "/"
        for p in (REPO_ROOT / "batchscore").glob("*/__init__.py")
    )
    missing = [p for p in packages if p.removeprefix("batchscore/") not in block.group(1)]
    assert not missing, f"the README's folder map does not name {missing}"
    for top in ("dags/", "jobs/", "features/", "expectations/", "pipelines/", "infra/", "tests/", "bench/"):
        assert top in block.group(1), top


UNTYPED = "dict[str, Any]"
UNTYPED_CEILING = 239
"""Annotations `dict[str, Any]` in the code; the count may only go down (254 before issue 28, 253
before its typed contracts, 242 after the typed manifests and pinned model, 239 after the typed
score result, drift evidence, gate decision and stage timings, by this count).
What crosses a stage boundary is a typed record (`PublishResult`, `ModelMetadata`, `RunContext`,
...); an untyped dict remains only at true edges (JSON from outside, Airflow's context)."""


def untyped_dicts() -> list[str]:
    """Where the code annotates an argument, a return or a variable as `dict[str, Any]`."""
    found = []
    for _, path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            annotations = []
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                arguments = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
                annotations = [a.annotation for a in arguments] + [node.returns]
            elif isinstance(node, ast.AnnAssign):
                annotations = [node.annotation]
            for annotation in annotations:
                if annotation is not None and UNTYPED in ast.unparse(annotation):
                    found.append(f"{path.relative_to(REPO_ROOT)}:{annotation.lineno}")
    return found


def test_untyped_dicts_only_go_down(record_property):
    found = untyped_dicts()
    record_property("untyped_dicts", len(found))
    print(f"\n{len(found)} `{UNTYPED}` annotations (ceiling {UNTYPED_CEILING})")
    assert len(found) <= UNTYPED_CEILING, (
        f"{len(found)} `{UNTYPED}` annotations, more than the ceiling {UNTYPED_CEILING}: type what crosses "
        "a boundary (a frozen dataclass) instead; newest ones:\n" + "\n".join(found[-10:])
    )


def _alternatives(annotation: ast.expr) -> Iterator[ast.expr]:
    """An annotation and, for a union (`X | None`, `Optional[X]`), each of its members."""
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        yield from _alternatives(annotation.left)
        yield from _alternatives(annotation.right)
    elif isinstance(annotation, ast.Subscript) and ast.unparse(annotation.value) in ("Optional", "Union"):
        members = annotation.slice.elts if isinstance(annotation.slice, ast.Tuple) else [annotation.slice]
        for member in members:
            yield from _alternatives(member)
    else:
        yield annotation


def _is_packed(annotation: ast.expr) -> bool:
    """`tuple[A, B]` of different types; `tuple[X, ...]` and `tuple[X, X]` are not packed."""
    if not (
        isinstance(annotation, ast.Subscript)
        and ast.unparse(annotation.value) in ("tuple", "Tuple")
        and isinstance(annotation.slice, ast.Tuple)
    ):
        return False
    members = annotation.slice.elts
    if any(isinstance(m, ast.Constant) and m.value is Ellipsis for m in members):
        return False
    return len({ast.unparse(m) for m in members}) > 1


def packed_tuples() -> list[str]:
    """Arguments annotated as a fixed tuple of different types (`day: tuple[date, str, Footprint]`):
    several values packed into one to stay under the function-size cap. Collections of such
    tuples (rows, pairs) are not arguments packed by hand and are not counted."""
    found = []
    for _, path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for argument in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]:
                annotation = argument.annotation
                if annotation is not None and any(_is_packed(a) for a in _alternatives(annotation)):
                    found.append(
                        f"{path.relative_to(REPO_ROOT)}:{node.lineno} {node.name}"
                        f"({argument.arg}: {ast.unparse(annotation)})"
                    )
    return found


def test_no_packed_tuples():
    """A function that needs many values takes them as parameters or one named record (a frozen
    dataclass), not a tuple of different things unpacked by position; a pair of one type, like
    (low, high) bounds, is fine."""
    found = packed_tuples()
    assert not found, "name what these tuples carry (a frozen dataclass or separate parameters):\n" + (
        "\n".join(found)
    )
