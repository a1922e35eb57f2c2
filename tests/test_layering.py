"""The package boundaries of the design card, checked on the source (an import-linter in a few lines)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
FORBIDDEN = {
    "mrs": {"agent", "analysis", "gui", "simulator", "protocols", "mrsmon", "zmq", "PySide6", "pyqtgraph"},
    "protocols": {"agent", "analysis", "gui", "simulator", "mrsmon", "PySide6", "pyqtgraph"},
    "agent": {"analysis", "gui", "simulator", "mrsmon", "PySide6", "pyqtgraph"},
    "analysis": {"gui", "mrsmon", "PySide6", "pyqtgraph"},
    "simulator": {"agent", "analysis", "gui", "mrsmon", "PySide6", "pyqtgraph"},
    "gui": {"agent", "analysis", "simulator", "mrsmon"},
}
ALLOWED_EXCEPTIONS: set[tuple[str, str]] = set()


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_respect_the_layering(package):
    problems = []
    for path in sorted((ROOT / package).rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        for name in imports(path) & FORBIDDEN[package]:
            if (rel, name) not in ALLOWED_EXCEPTIONS:
                problems.append(f"{rel} imports {name}")
    assert not problems, "\n".join(problems)
