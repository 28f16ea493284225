"""Count the uses of ``typing.Any`` in a package's annotations, per module (for the static-check notes).

    python scripts/count_any.py pytest_dnnbench

A use is a ``Any`` name inside an annotation (parameters, returns, variables, type aliases' right
sides are not annotations and are counted too when they are module-level assignments of a type).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def count(tree: ast.Module) -> int:
    n = 0
    for node in ast.walk(tree):
        annotations: list[ast.expr] = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
                if a is not None and a.annotation is not None:
                    annotations.append(a.annotation)
            if node.returns is not None:
                annotations.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            annotations.append(node.annotation)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Subscript):
            annotations.append(node.value)  # a type alias such as JsonObject = dict[str, Any]
        for ann in annotations:
            if isinstance(ann, ast.Constant) and isinstance(ann.value, str):  # a quoted annotation
                try:
                    ann = ast.parse(ann.value, mode="eval").body
                except SyntaxError:
                    continue
            n += sum(1 for sub in ast.walk(ann) if isinstance(sub, ast.Name) and sub.id == "Any")
            n += sum(1 for sub in ast.walk(ann) if isinstance(sub, ast.Constant) and sub.value == "Any")
    return n


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else "pytest_dnnbench")
    total = 0
    rows = []
    for path in sorted(root.rglob("*.py")):
        n = count(ast.parse(path.read_text(encoding="utf-8")))
        total += n
        if n:
            rows.append((n, str(path)))
    for n, path in sorted(rows, reverse=True):
        print(f"{n:5d}  {path}")
    print(f"{total:5d}  total")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
