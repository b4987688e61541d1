"""Which stages share a process when a run may use fewer processes than it has components
(:attr:`RunConfig.max_processes <airflow_amml.run_config.RunConfig.max_processes>`).

The stages are put in one topological order that keeps a chain together (a stage comes right after the one it
reads from where it can), and that order is cut into at most ``max_processes`` contiguous groups, the heaviest
as light as it can be. Contiguous in a topological order means every edge goes from a group to itself or to a
later one: the groups form a graph without cycles, so bounded inboxes between them cannot deadlock (a process
only ever waits on a later one, and the last waits on none). Any plan can be grouped, down to one process.

    source ─► filter ─► derive ─► train_lstm ─► csv_sink        max_processes=2
    [ source+filter+derive ]    [ train_lstm+csv_sink ]         (training weighs more than a filter)
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from .plan import Stage

# How much a stage weighs when groups are balanced: a training dwarfs a filter; a component that runs (or
# fits) a model comes between. A guess from the components' parameters, not a measurement.
TRAINING_WEIGHT = 8
MODEL_WEIGHT = 3
PLAIN_WEIGHT = 1


def process_groups(stages: Sequence[Stage], max_processes: int | None) -> list[tuple[Stage, ...]]:
    """The stages each process runs, in an order where every group only sends to later ones.

    :param max_processes: the most groups; None (or at least one per stage): every stage alone, as without a cap
    """
    order = chain_order(stages)
    if max_processes is None or max_processes >= len(order):
        return [(stage,) for stage in order]
    cuts = _balanced_cuts(order, max_processes)
    bounds = [0, *cuts, len(order)]
    return [tuple(order[a:b]) for a, b in itertools.pairwise(bounds)]


def stage_weight(stage: Stage) -> int:
    names = {p.name for p in stage.spec.params}
    if "epoch" in names:
        return TRAINING_WEIGHT
    return MODEL_WEIGHT if "model" in names else PLAIN_WEIGHT


def chain_order(stages: Sequence[Stage]) -> list[Stage]:
    """A topological order that follows each chain before starting the next (depth first from each source)."""
    by_id = {s.id: s for s in stages}
    waiting = {s.id: len(set(s.upstream)) for s in stages}
    ready = [s.id for s in reversed(stages) if waiting[s.id] == 0]  # a stack: the first source on top
    order: list[Stage] = []
    while ready:
        stage = by_id[ready.pop()]
        order.append(stage)
        for d in reversed(list(dict.fromkeys(stage.downstream))):
            waiting[d] -= 1
            if waiting[d] == 0:
                ready.append(d)
    if len(order) != len(stages):  # the compiler refuses cycles; this is a broken plan, not a user's error
        raise ValueError(f"the plan has a cycle among {sorted(set(by_id) - {s.id for s in order})}")
    return order


def _balanced_cuts(order: list[Stage], groups: int) -> list[int]:
    """Where to cut ``order`` into ``groups`` non-empty pieces: the heaviest piece as light as possible, then as
    few edges crossing a cut as possible (each crossing is a batch through a queue instead of a call)."""
    weights = [stage_weight(s) for s in order]
    prefix = [0]
    for w in weights:
        prefix.append(prefix[-1] + w)
    position = {s.id: i for i, s in enumerate(order)}
    # crossing[i]: the edges from order[:i] into order[i:]
    crossing = [sum(1 for s in order[:i] for d in s.downstream if position[d] >= i) for i in range(len(order) + 1)]
    n = len(order)
    # best[k][i]: (heaviest piece, crossings, cuts) for order[:i] in k pieces
    best: list[dict[int, tuple[int, int, tuple[int, ...]]]] = [{0: (0, 0, ())}]
    for k in range(1, groups + 1):
        row: dict[int, tuple[int, int, tuple[int, ...]]] = {}
        for i in range(k, n - (groups - k) + 1):
            candidates = []
            for j, (heaviest, crossed, cuts) in best[k - 1].items():
                if j < i:
                    cut = (j,) if j else ()
                    candidates.append((max(heaviest, prefix[i] - prefix[j]), crossed + crossing[j], cuts + cut))
            row[i] = min(candidates)
        best.append(row)
    return list(best[groups][n][2])
