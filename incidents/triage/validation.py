"""The rules a tree must pass to be published (and that the admin shows while editing).

One root; every node reachable from it (no orphans); no cycles; a question has at least two
answers, a step exactly one way on, an outcome none (outcomes are leaves); every walk ends at an
outcome. Works on plain data so the admin can check unsaved edits too.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    message: str
    node: str = ""  # the node's key when the problem is one node's


def find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    """A cycle in the graph as a list of node keys (first == last), or None."""
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(edges, white)
    for targets in edges.values():
        for t in targets:
            color.setdefault(t, white)
    stack_path: list[str] = []

    def visit(start: str) -> list[str] | None:
        # Iterative DFS (a deep tree must not hit the recursion limit).
        stack = [(start, iter(edges.get(start, [])))]
        color[start] = grey
        stack_path.append(start)
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                color[node] = black
                stack.pop()
                stack_path.pop()
                continue
            if color[nxt] == grey:
                return [*stack_path[stack_path.index(nxt) :], nxt]
            if color[nxt] == white:
                color[nxt] = grey
                stack_path.append(nxt)
                stack.append((nxt, iter(edges.get(nxt, []))))
        return None

    for n in list(color):
        if color[n] == white:
            cycle = visit(n)
            if cycle:
                return cycle
    return None


def validate_graph(nodes: dict[str, str], edges: list[tuple[str, str, str]]) -> list[Problem]:
    """Problems of a tree given {node key: kind} and [(from key, answer key, to key)]."""
    problems: list[Problem] = []
    if not nodes:
        return [Problem("The tree has no nodes.")]
    out: dict[str, list[str]] = {k: [] for k in nodes}
    incoming: dict[str, int] = dict.fromkeys(nodes, 0)
    for source, answer, target in edges:
        if source not in nodes or target not in nodes:
            problems.append(Problem(f"Answer '{answer}' joins a node outside this tree."))
            continue
        out[source].append(target)
        incoming[target] += 1
    roots = [k for k in nodes if incoming[k] == 0]
    if not roots:
        problems.append(Problem("There is no root: every node has an answer leading to it."))
    elif len(roots) > 1:
        problems.append(
            Problem(
                "There must be exactly one root (a node no answer leads to); found "
                f"{len(roots)}: {', '.join(sorted(roots))}. Connect or delete the orphan nodes."
            )
        )
    cycle = find_cycle(out)
    if cycle:
        problems.append(Problem(f"The answers form a cycle: {' -> '.join(cycle)}."))
    for key, kind in nodes.items():
        n = len(out[key])
        if kind == "question" and n < 2:
            problems.append(Problem(f"Question '{key}' needs at least two answers.", key))
        elif kind == "step" and n != 1:
            problems.append(Problem(f"Step '{key}' needs exactly one way on (has {n}).", key))
        elif kind == "outcome" and n:
            problems.append(Problem(f"Outcome '{key}' must be a leaf (has {n} answers).", key))
    if len(roots) == 1 and not cycle:
        seen = {roots[0]}
        todo = [roots[0]]
        while todo:
            for t in out[todo.pop()]:
                if t not in seen:
                    seen.add(t)
                    todo.append(t)
        for key in nodes:
            if key not in seen:
                problems.append(Problem(f"Node '{key}' cannot be reached from the root.", key))
    if not any(kind == "outcome" for kind in nodes.values()):
        problems.append(Problem("The tree has no outcome."))
    return problems


def validate_tree(tree) -> list[Problem]:
    """Problems of a saved tree version (empty when it may be published)."""
    nodes = {n.key: n.kind for n in tree.nodes.all()}
    edges = [
        (a.from_node.key, a.key, a.to_node.key)
        for a in tree.answers.select_related("from_node", "to_node")
    ]
    return validate_graph(nodes, edges)
