"""The layout promised by the design card: one `fusionrec.` namespace, imports pointing one way, no circles."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOPS = ("agent", "retrieval", "encoders", "finetune", "evaluation", "ui")
# The design card's direction: ui -> agent -> retrieval -> encoders -> core; finetune and evaluation use the
# library (not each other); nothing imports ui. A package may import itself and anything to its right.
ALLOWED = {
    "ui": {"ui", "agent", "retrieval", "encoders", "core"},
    "agent": {"agent", "retrieval", "encoders", "core"},
    "retrieval": {"retrieval", "encoders", "core"},
    "encoders": {"encoders", "core"},
    "core": {"core"},
    "finetune": {"finetune", "agent", "retrieval", "encoders", "core"},
    "evaluation": {"evaluation", "agent", "retrieval", "encoders", "core"},
}
# The two places that gather every package: the CLI registers each package's commands, the config its section.
GATHERERS = {"fusionrec.cli": ".commands", "fusionrec.config": ".config"}


def _modules() -> dict[str, Path]:
    found = {}
    for folder in ("fusionrec", *TOPS):
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if folder != "fusionrec":
                parts.insert(0, "fusionrec")
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in TOPS else "core"


def _imports(path: Path, module_level_only: bool = False) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if module_level_only else ast.walk(tree)
    names = []
    for node in nodes:
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = [f"{node.module}.{a.name}" for a in node.names]
            modules = [s for s in subs if s in MODULES]
            names += modules if len(modules) == len(subs) else [node.module, *modules]
    return names


def test_every_import_uses_the_fusionrec_namespace() -> None:
    files = [p for folder in ("fusionrec", *TOPS, "tests", "benchmarks", "scripts") for p in (ROOT / folder).rglob("*.py")]
    bare = [f"{p.relative_to(ROOT)}: {n}" for p in files for n in _imports(p) if n.split(".")[0] in TOPS]
    assert not bare, "imports outside the fusionrec namespace:\n" + "\n".join(bare)


def test_imports_point_one_way() -> None:
    wrong = []
    for module, path in MODULES.items():
        mine = _package(module)
        for name in _imports(path):
            if name not in MODULES or not name.startswith("fusionrec"):
                continue
            theirs = _package(name)
            gathered = module in GATHERERS and name.endswith(GATHERERS[module])
            if theirs not in ALLOWED[mine] and not gathered:
                wrong.append(f"{module} ({mine}) imports {name} ({theirs})")
    assert not wrong, "\n".join(sorted(set(wrong)))


def test_no_import_circle_at_module_level() -> None:
    graph = {m: {n for n in _imports(p, module_level_only=True) if n in MODULES and n != m} for m, p in MODULES.items()}
    done: set[str] = set()

    def visit(node: str, stack: list[str]) -> None:
        if node in stack:
            cycle = stack[stack.index(node):] + [node]
            pytest.fail("import circle: " + " -> ".join(cycle))
        if node in done:
            return
        for nxt in graph[node]:
            if not nxt.startswith(node + "."):  # a package importing its own submodule is no circle
                visit(nxt, [*stack, node])
        done.add(node)

    for module in sorted(graph):
        visit(module, [])


@pytest.mark.slow
def test_wheel_installs_everything_under_fusionrec(tmp_path: Path) -> None:
    src = tmp_path / "src"  # a copy of the tracked files: building in the checkout would leave build/ there
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(src)],
        check=True, capture_output=True, cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("fusionrec-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"fusionrec"}
    for module in ("fusionrec/agent/rank.py", "fusionrec/models/registry.py", "fusionrec/data/loaders/movielens.py",
                   "fusionrec/retrieval/collaborative/bpr.py", "fusionrec/finetune/recipes/ranker_cpu.yaml",
                   "fusionrec/agent/prompts/default.txt"):
        assert module in names, module
