#!/usr/bin/env python3
"""Fail when modules of forge import each other in a cycle.

Two levels are checked:
  1. top-level modules (`src/<m>.rs`, `src/<m>/`): an edge m -> n for every `crate::n`
     path in m's code;
  2. inside each top-level module, its direct submodules (`src/<m>/<s>.rs`,
     `src/<m>/<s>/`): an edge s -> t for every `super::t` or `crate::m::t` path in s.

It also fails when a module other than `commands` imports `cli` (what the user typed is
resolved into settings at the edge, never read deeper in).

Test code is left out (a file's trailing `#[cfg(test)]` module, `*_tests.rs` files): a
test may reach anywhere. Prints every cycle found (as `a -> b -> a`) and exits 1; prints
the module order and exits 0 when there is none.

Usage: scripts/check-cycles.py [SRC_DIR]   (default: src next to this script's parent)
"""

import re
import sys
from pathlib import Path

PATH = re.compile(r"\b(crate|super)::(\{[^}]*\}|[a-z_][a-z0-9_]*)", re.S)
IDENT = re.compile(r"[a-z_][a-z0-9_]*")


def code_of(path: Path) -> str:
    """The file without comments and without its trailing test module."""
    if path.name.endswith("_tests.rs"):
        return ""
    text = path.read_text(encoding="utf-8")
    cut = re.search(r"^#\[cfg\(test\)\]", text, re.M)
    if cut:
        text = text[: cut.start()]
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def expand(seg: str):
    """`name` → [name]; `{a, b::c}` → [a, b]."""
    if not seg.startswith("{"):
        return [seg]
    parts = (IDENT.match(p.strip()) for p in seg[1:-1].split(","))
    return [m.group(0) for m in parts if m]


def first_segments(text: str, root: str):
    """The first path segment after every `root::` (expanding `root::{a, b::c}`)."""
    for m in PATH.finditer(text):
        if m.group(1) == root:
            yield from expand(m.group(2))


def second_segments(text: str, top: str):
    """The segment after every `crate::<top>::`."""
    for m in re.finditer(rf"\bcrate::{top}::(\{{[^}}]*\}}|[a-z_][a-z0-9_]*)", text, re.S):
        yield from expand(m.group(1))


def files_of(root: Path, name: str):
    single = root / f"{name}.rs"
    folder = root / name
    out = [single] if single.is_file() else []
    if folder.is_dir():
        out += sorted(folder.rglob("*.rs"))
    return out


def modules(root: Path):
    names = {p.stem for p in root.glob("*.rs")} | {p.name for p in root.iterdir() if p.is_dir()}
    return sorted(names - {"lib", "main", "mod"})


def cycles(graph):
    """Every elementary cycle's nodes, found by DFS from each node (graphs here are small)."""
    found = set()
    out = []

    def walk(start, node, path, seen):
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                key = frozenset(path)
                if key not in found:
                    found.add(key)
                    out.append(path + [start])
            elif nxt not in seen and nxt > start:
                walk(start, nxt, path + [nxt], seen | {nxt})

    for n in sorted(graph):
        walk(n, n, [n], {n})
    return out


def top_level(src: Path):
    names = modules(src)
    graph = {}
    for m in names:
        deps = set()
        for f in files_of(src, m):
            deps |= {d for d in first_segments(code_of(f), "crate") if d in names and d != m}
        graph[m] = deps
    return graph


def inner(src: Path, top: str):
    folder = src / top
    if not folder.is_dir():
        return {}
    names = modules(folder)
    graph = {}
    for s in names:
        deps = set()
        for f in files_of(folder, s):
            text = code_of(f)
            # `super::` in src/<top>/<s>.rs or src/<top>/<s>/mod.rs names a sibling; deeper
            # files' `super::` stays inside <s>.
            if f.parent == folder or (f.name == "mod.rs" and f.parent.parent == folder):
                deps |= set(first_segments(text, "super"))
            deps |= set(second_segments(text, top))
        graph[s] = {d for d in deps if d in names and d != s}
    return graph


def main():
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "src"
    bad = []
    top = top_level(src)
    # What the user typed stays at the edge: only the commands read `cli`'s types.
    bad += [f"{m} -> cli (only `commands` may)" for m, deps in top.items() if "cli" in deps and m != "commands"]
    bad += [" -> ".join(c) for c in cycles(top)]
    for m in top:
        bad += [f"{m}::" + f" -> {m}::".join(c) for c in cycles(inner(src, m))]
    if bad:
        print("import cycles between modules:", file=sys.stderr)
        for b in bad:
            print(f"  {b}", file=sys.stderr)
        sys.exit(1)
    order = []
    graph = {k: set(v) for k, v in top.items()}
    while graph:
        leaves = sorted(k for k, v in graph.items() if not v - set(order))
        order += leaves
        for k in leaves:
            del graph[k]
    print("no import cycles; top-level modules, lowest first: " + " ".join(order))


if __name__ == "__main__":
    main()
