#!/usr/bin/env python3
"""Fails when the crate's top-level modules import each other in a cycle.

Reads `use crate::...` and `crate::x::` paths in src/ (test modules and
comments left out) and prints the graph with --graph. `make lint` runs it.
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(__file__), "..", "src")
TESTS = re.compile(r"#\[cfg\(test\)\]\s*(?:pub(?:\(crate\))?\s+)?mod tests\s*(?:\{|;)", re.S)


def top(path):
    first = os.path.relpath(path, ROOT).split(os.sep)[0]
    return first[:-3] if first.endswith(".rs") else first


def heads(group):
    """The first segment of each path in a `{a::b, c}` group."""
    depth, part, out = 0, "", []
    for ch in group:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(part)
            part = ""
        else:
            part += ch
    out.append(part)
    return [p.strip().split("::")[0].strip("{} \n") for p in out if p.strip()]


def graph():
    edges = {}
    modules = {top(os.path.join(ROOT, f)) for f in os.listdir(ROOT)}
    for folder, _, files in os.walk(ROOT):
        for name in files:
            if not name.endswith(".rs") or name == "tests.rs":
                continue
            path = os.path.join(folder, name)
            text = TESTS.split(open(path, encoding="utf-8").read())[0]
            text = re.sub(r"//.*", "", text)
            this = top(path)
            for m in re.finditer(r"crate::(\{(?:[^{}]|\{[^{}]*\})*\}|\w+)", text):
                g = m.group(1)
                for dep in heads(g[1:-1]) if g.startswith("{") else [g]:
                    if dep in modules and dep not in (this, "lib", "main"):
                        edges.setdefault(this, set()).add(dep)
    return edges


def cycles(edges):
    found, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for dep in sorted(edges.get(node, ())):
            if state.get(dep) == "open":
                found.append(path[path.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def main():
    edges = graph()
    if "--graph" in sys.argv:
        for node in sorted(edges):
            print(f"{node} -> {', '.join(sorted(edges[node]))}")
    found = cycles(edges)
    for c in found:
        print("module cycle: " + " -> ".join(c), file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
