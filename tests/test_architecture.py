"""The package's folders are layers (docs/architecture.md): each imports only from the layers below it, so the
tree reads as the architecture and a change in a high layer never reaches down. Checked on every import
statement of every module, lazy ones inside functions included."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "lora_repro"
# Bottom to top; a module may import from its own layer and from lower ones. Layers on one line are siblings:
# neither imports the other.
LAYERS = [
    ("checks", "paths", "mutations"),
    ("metrics",),
    ("methods",),
    ("models",),
    ("paper",),
    ("tasks",),
    ("train",),
    ("records",),
    ("run",),
    ("sweeps",),
    ("report",),
    ("analysis", "bench"),
    ("app", "cli"),
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "lora_repro" else None


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every lora_repro import in a file."""
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [f"{target}.{a.name}" for a in node.names] if node.module is None else [target]
            else:
                names = [node.module or ""]
            out += [(node.lineno, n) for n in names if n.startswith("lora_repro")]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("lora_repro")]
    return out


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE or p.name != "__init__.py")


def test_every_top_level_module_and_folder_has_a_layer():
    names = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" and p.name != "__init__.py" and p.name != "__main__.py")
             or (p.is_dir() and (p / "__init__.py").exists())}
    assert names == set(RANK), f"give these a layer in docs/architecture.md and here: {names ^ set(RANK)}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_a_module_imports_only_its_own_layer_and_those_below(path):
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    own = _layer(".".join(rel.parts))
    assert own in RANK, own
    bad = []
    for line, target in _imports(path):
        layer = _layer(target)
        if layer is None or layer == own:
            continue
        if RANK[layer] >= RANK[own]:
            bad.append(f"line {line}: imports {target} (layer {layer!r} is not below {own!r})")
    assert not bad, "\n".join(bad)


def test_the_package_never_imports_test_tooling():
    """tools/faults.py breaks runs on purpose; the product never imports it (it paces runs through the trainer's
    batch hook, not by patching the package)."""
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            assert not any(n.split(".")[0] in ("tools", "faults", "tests") for n in names), path
