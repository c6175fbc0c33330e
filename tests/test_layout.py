"""The layout: stage packages whose imports only point to earlier stages, no import cycle, and
no torch, training, export or evaluation code in the runtime and the apps.

Every import is read with ``ast`` from every module, imports inside functions included, so a
lazy import cannot hide an arrow that points the wrong way. The checks run on the real tree and,
to show that they can fail, on a small tree with the mistakes in it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# where each installed package's files live (pyproject.toml's package-dir)
SOURCES = {"kws": ROOT / "kws", "kws.export": ROOT / "export",
           "kws.firmware": ROOT / "firmware_bridge"}
# the stages in data-flow order: a module may import its own stage and earlier ones
STAGES = ("core", "features", "data", "metrics", "runtime", "peers", "train", "synth", "export",
          "firmware", "eval", "apps", "cli")
# never imported by these stages, whatever the order says
FORBIDDEN = {
    "runtime": ("kws.train", "kws.export", "kws.eval", "kws.metrics", "kws.synth",
                "kws.firmware", "torch", "torchaudio"),
    "apps": ("kws.train", "kws.export", "kws.eval", "kws.metrics", "kws.synth", "kws.firmware",
             "torch", "torchaudio"),
    "peers": ("kws.train", "kws.export", "kws.eval", "torch"),
}
# the trainer is the training command's business: export and eval read checkpoints
TRAINER = ("kws.train.trainer", "kws.train.ensemble", "kws.train.run")
TRAINER_USERS = ("kws.train", "kws.cli")


def module_files(sources: dict[str, Path]) -> dict[str, Path]:
    """Dotted module name -> file, for every .py below each source folder."""
    out = {}
    for package, folder in sources.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([package, *parts])] = path
    return out


def imports_of(name: str, path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import statement in the file, nested ones included;
    relative imports resolved; ``from a import b`` counts ``a.b`` when that is a module."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
            found.append((base, node.lineno))
    return found


def stage_of(module: str) -> str | None:
    """The stage a kws module belongs to (None outside kws)."""
    parts = module.split(".")
    if parts[0] != "kws":
        return None
    if len(parts) == 1:
        return "core"  # kws/__init__.py re-exports core names only
    return "cli" if parts[1] in ("cli", "__main__") else parts[1]


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def problems(sources: dict[str, Path]) -> list[str]:
    """Every layout violation, each naming the file, line and import."""
    files = module_files(sources)
    graph: dict[str, set[str]] = {name: set() for name in files}
    found = []
    for name, path in files.items():
        stage = stage_of(name)
        if stage not in STAGES:
            found.append(f"{path}: module {name} is in no stage package {STAGES}")
            continue
        for target, line in imports_of(name, path):
            where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{line}"
            if within(target, FORBIDDEN.get(stage, ())):
                found.append(f"{where}: {name} ({stage}) imports {target}, which {stage} never "
                             "imports")
            if target not in files or target == name:
                continue
            graph[name].add(target)
            other = stage_of(target)
            if STAGES.index(other) > STAGES.index(stage):
                found.append(f"{where}: {name} ({stage}) imports {target} ({other}), a later "
                             "stage")
            if within(target, TRAINER) and not within(name, TRAINER_USERS):
                found.append(f"{where}: {name} imports {target}: outside training, read "
                             "checkpoints with kws.train.checkpoint")
    found += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules (iterative DFS)."""
    out, state = [], {}
    for start in sorted(graph):
        if start in state:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        state[start] = "open"
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = "done"
                stack.pop()
                path.pop()
            elif state.get(child) == "open":
                out.append(path[path.index(child):] + [child])
            elif child not in state:
                state[child] = "open"
                path.append(child)
                stack.append((child, iter(sorted(graph[child]))))
    return out


def test_the_tree_keeps_the_layout():
    assert problems(SOURCES) == []


def test_every_stage_has_modules_and_the_runtime_has_its_pieces():
    files = module_files(SOURCES)
    assert {stage_of(m) for m in files} == set(STAGES)
    for name in ("kws.runtime.engine", "kws.runtime.stream", "kws.runtime.detector",
                 "kws.runtime.spotter", "kws.core.decision", "kws.core.contract",
                 "kws.train.checkpoint", "kws.export.exporter", "kws.firmware.emit"):
        assert name in files


def write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_checks_name_each_kind_of_mistake(tmp_path):
    kws = tmp_path / "kws"
    write(kws, "__init__.py", "")
    for stage in ("core", "runtime", "train", "eval", "apps"):
        write(kws, f"{stage}/__init__.py", "")
    write(kws, "core/a.py", "from kws.core import b\n")
    write(kws, "core/b.py", "import kws.core.a\n")  # a cycle
    write(kws, "runtime/engine.py", "def f():\n    import torch\n")  # torch, even lazily
    write(kws, "core/c.py", "def f():\n    from kws.runtime import engine\n")  # a later stage
    write(kws, "train/trainer.py", "")
    write(kws, "eval/engines.py", "from kws.train.trainer import Trainer\n")
    write(kws, "apps/listen.py", "from ..eval import engines\n")  # relative, forbidden
    write(kws, "stray/x.py", "")
    found = "\n".join(problems({"kws": kws}))
    assert "import cycle: kws.core.a -> kws.core.b -> kws.core.a" in found
    assert "engine.py:2: kws.runtime.engine (runtime) imports torch" in found
    assert "c.py:2: kws.core.c (core) imports kws.runtime.engine (runtime), a later stage" \
        in found
    assert "engines.py:1: kws.eval.engines imports kws.train.trainer: outside training" in found
    assert "listen.py:1: kws.apps.listen (apps) imports kws.eval.engines, which apps never" \
        in found
    assert "module kws.stray.x is in no stage package" in found


@pytest.mark.parametrize("stage", ["runtime", "apps"])
def test_runtime_and_apps_never_import_torch_training_export_or_eval(stage):
    files = module_files(SOURCES)
    for name, path in files.items():
        if stage_of(name) == stage:
            for target, line in imports_of(name, path):
                assert not within(target, FORBIDDEN[stage]), f"{path}:{line} imports {target}"
