"""The package keeps its shape: layers import one way, modules and classes stay small.

The layer order is ``livesupport.LAYERS``; these tests walk every import statement of every
module (inside functions and under ``TYPE_CHECKING`` too) and the live classes.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import livesupport
from livesupport import LAYERS

PACKAGE = Path(livesupport.__file__).parent
MAX_MODULE_LINES = 1200
MAX_CLASS_LINES = 400


def _modules() -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    out = {}
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="livesupport."):
        spec = importlib.util.find_spec(info.name)
        out[info.name] = Path(spec.origin)
    return out


def _layer(module: str) -> int | None:
    """The layer index of ``livesupport.X...``; None for the package itself."""
    parts = module.split(".")
    if parts[0] != "livesupport" or len(parts) < 2:
        return None
    return LAYERS.index(parts[1])


def _imports(module: str, path: Path) -> list[tuple[int, str]]:
    """``(line, imported module)`` for every import in the file, at any depth."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            out.append((node.lineno, target))
            # ``from . import handlers`` imports a module named like the alias.
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                if importlib.util.find_spec(target) and candidate in MODULES:
                    out.append((node.lineno, candidate))
    return out


MODULES = _modules()


def test_every_module_belongs_to_a_declared_layer():
    assert len(MODULES) >= 20
    top = {name.split(".")[1] for name in MODULES}
    assert top == set(LAYERS), "LAYERS and the package's modules differ"


def test_no_module_imports_from_a_later_layer():
    bad = []
    for module, path in MODULES.items():
        own = _layer(module)
        for line, target in _imports(module, path):
            if target == "livesupport":
                continue  # the package's own __init__: version and LAYERS only
            layer = _layer(target)
            if layer is not None and layer > own:
                bad.append(f"{path.name}:{line} ({LAYERS[own]}) imports {target}")
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_no_dynamic_imports():
    """``importlib`` and ``__import__`` would hide an import from the test above."""
    bad = []
    for _module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if any(n.split(".")[0] == "importlib" for n in names):
                    bad.append(f"{path.name}:{node.lineno} imports importlib")
            if isinstance(node, ast.Name) and node.id == "__import__":
                bad.append(f"{path.name}:{node.lineno} uses __import__")
    assert not bad, bad


def test_the_layer_test_sees_a_violation():
    """The walk above really finds imports: storage importing the domain would be caught."""
    sample = PACKAGE / "storage" / "chats.py"
    targets = {t for _, t in _imports("livesupport.storage.chats", sample)}
    assert "livesupport.protocol" in targets
    assert _layer("livesupport.storage.chats") < _layer("livesupport.chats")


def test_modules_and_classes_stay_small():
    too_big = []
    for module, path in MODULES.items():
        lines = path.read_text().count("\n")
        if lines > MAX_MODULE_LINES:
            too_big.append(f"{module}: {lines} lines")
        mod = importlib.import_module(module)
        for name, cls in inspect.getmembers(mod, inspect.isclass):
            if cls.__module__ != module:
                continue
            src, _ = inspect.getsourcelines(cls)
            if len(src) > MAX_CLASS_LINES:
                too_big.append(f"{module}.{name}: {len(src)} lines")
            own_bases = [b for b in cls.__bases__ if b.__module__.startswith("livesupport")]
            if len(own_bases) > 1:
                too_big.append(f"{module}.{name} is assembled from {own_bases}")
    assert not too_big, too_big


def test_the_storage_guard_catches_a_query_from_elsewhere(app):
    """The ``app`` fixture's hook would fail a test whose code queries the database directly."""
    from inprocess import _storage_only

    db = app.storage.db
    seen: list[str] = []
    db.connection().set_trace_callback(_storage_only(seen))
    try:
        db.execute_sql("SELECT 1")  # from this test file: outside the storage layer
        assert len(seen) == 1 and "test_layers.py" in seen[0]
        app.run(app.storage.accounts.operator_count())  # through storage: fine
        assert len(seen) == 1
    finally:
        db.connection().set_trace_callback(None)
