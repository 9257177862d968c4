#!/usr/bin/env python3
"""The import picture of src/: which top-level modules use which (via `crate::`/`super::`
paths), the cycles among them, and the pairs that import each other both ways.

Usage: scripts/imports.py [SRC_DIR]   (default: src)
"""
import os
import re
import sys

src = sys.argv[1] if len(sys.argv) > 1 else "src"
USE = re.compile(r"crate::([a-z_][a-z0-9_]*)")


def module_of(path):
    rel = os.path.relpath(path, src)
    parts = rel.split(os.sep)
    if len(parts) == 1:
        return parts[0][:-3]  # app.rs -> app
    return parts[0]


def strip_tests(text):
    out, i = [], 0
    while True:
        j = text.find("#[cfg(test)]", i)
        if j < 0:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:j])
        k = j + len("#[cfg(test)]")
        brace, semi = text.find("{", k), text.find(";", k)
        if semi >= 0 and (brace < 0 or semi < brace):
            i = semi + 1
            continue
        depth, k = 0, brace
        while k < len(text):
            if text[k] == "{":
                depth += 1
            elif text[k] == "}":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        i = k + 1


edges = {}
files = {}
for root, _, names in os.walk(src):
    for n in names:
        if not n.endswith(".rs"):
            continue
        p = os.path.join(root, n)
        m = module_of(p)
        if m in ("lib", "main"):
            continue
        files[m] = files.get(m, 0) + 1
        text = open(p, encoding="utf-8").read()
        # Test code does not count: drop each `#[cfg(test)]` item (to its closing brace,
        # or its semicolon), keep what follows it.
        text = strip_tests(text)
        for t in USE.findall(text):
            if t != m:
                edges.setdefault(m, set()).add(t)

mods = sorted(files)
edges = {m: {t for t in edges.get(m, ()) if t in files} for m in mods}
arrows = sum(len(v) for v in edges.values())
both = sorted({tuple(sorted((a, b))) for a in mods for b in edges[a] if a in edges.get(b, ())})

# Tarjan's strongly connected components.
index, low, stack, on, sccs, i = {}, {}, [], set(), [], [0]


def visit(v):
    index[v] = low[v] = i[0]
    i[0] += 1
    stack.append(v)
    on.add(v)
    for w in edges[v]:
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop()
            on.discard(w)
            comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            sccs.append(sorted(comp))


sys.setrecursionlimit(10000)
for v in mods:
    if v not in index:
        visit(v)

print(f"modules: {len(mods)}  import arrows: {arrows}")
print(f"pairs importing each other: {len(both)}")
for a, b in both:
    print(f"  {a} <-> {b}")
print(f"cycles (strongly connected groups of modules): {len(sccs)}")
for c in sccs:
    print(f"  {len(c)} modules: {' '.join(c)}")
