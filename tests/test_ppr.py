"""The Personalized PageRank engine against solutions worked out by hand, and networkx.

With damping d, the engine solves x = d A D^-1 x + (1 - d) p (A the weighted adjacency,
D the degrees, p the normalised restart vector) and returns x / sum(x): a dangling
node's mass goes back to p, as in networkx. Each small graph below is solved from those
equations in its comment; the tests use d = 1/2 unless they say otherwise.
"""

from __future__ import annotations

import logging

import networkx as nx
import numpy as np
import pytest

from agentmem.stores.graph import PersonalizedPageRank

D = 0.5


def engine_with(
    nodes: int, edges: list[tuple[int, int, float]], **options: object
) -> PersonalizedPageRank:
    """Return an engine over nodes 0..nodes-1 holding ``edges`` (u, v, weight)."""
    engine = PersonalizedPageRank(**options)  # type: ignore[arg-type]
    engine.add_nodes(range(nodes))
    for u, v, weight in edges:
        engine.add_weight(u, v, weight)
    return engine


def order(values: np.ndarray) -> list[int]:
    """Return the node indices from the highest rank down."""
    return [int(i) for i in np.argsort(-values, kind="stable")]


# -- small graphs solved by hand ------------------------------------------------------------


@pytest.mark.parametrize("weight", [1.0, 2.5])
def test_two_nodes(weight: float) -> None:
    # a - b, seed a. Both have degree w, so the edge carries all of each node's mass:
    #   x_a = d x_b + (1 - d),  x_b = d x_a
    #   => x_a = 1 / (1 + d) = 2/3,  x_b = d / (1 + d) = 1/3 (whatever w is).
    ranks = engine_with(2, [(0, 1, weight)]).run({0: 1.0})
    assert ranks == pytest.approx([2 / 3, 1 / 3], abs=1e-6)


def test_path_seeded_at_an_end() -> None:
    # a - b - c, seed a; degrees 1, 2, 1:
    #   x_a = d x_b / 2 + (1 - d),  x_b = d (x_a + x_c),  x_c = d x_b / 2
    #   => x_b = d / (1 + d) = 1/3,  x_c = d^2 / (2 (1 + d)) = 1/12,  x_a = x_c + 1/2 = 7/12.
    ranks = engine_with(3, [(0, 1, 1.0), (1, 2, 1.0)]).run({0: 1.0})
    assert ranks == pytest.approx([7 / 12, 1 / 3, 1 / 12], abs=1e-6)
    assert order(ranks) == [0, 1, 2]


def test_path_seeded_in_the_middle() -> None:
    # a - b - c, seed b: x_b = d (x_a + x_c) + (1 - d),  x_a = x_c = d x_b / 2
    #   => x_b = 1 / (1 + d) = 2/3,  x_a = x_c = d / (2 (1 + d)) = 1/6.
    ranks = engine_with(3, [(0, 1, 1.0), (1, 2, 1.0)]).run({1: 1.0})
    assert ranks == pytest.approx([1 / 6, 2 / 3, 1 / 6], abs=1e-6)


def test_star_seeded_at_a_leaf() -> None:
    # Centre 0 with k = 4 leaves 1..4, seed leaf 1. A leaf's whole mass goes to the
    # centre, the centre's is split k ways:
    #   x_0 = d (sum of leaves),  x_1 = d x_0 / k + (1 - d),  x_j = d x_0 / k (j = 2..4)
    #   sum of leaves = d x_0 + (1 - d)  =>  x_0 = d / (1 + d) = 1/3,
    #   x_j = d^2 / (k (1 + d)) = 1/24,  x_1 = 1/24 + 1/2 = 13/24.
    ranks = engine_with(5, [(0, leaf, 1.0) for leaf in range(1, 5)]).run({1: 1.0})
    assert ranks == pytest.approx([1 / 3, 13 / 24, 1 / 24, 1 / 24, 1 / 24], abs=1e-6)
    assert order(ranks)[:2] == [1, 0]


def test_star_seeded_at_the_centre() -> None:
    # The same star seeded at the centre: x_0 = d (sum of leaves) + (1 - d), x_j = d x_0 / k
    #   => x_0 = 1 / (1 + d) = 2/3,  x_j = d / (k (1 + d)) = 1/12.
    ranks = engine_with(5, [(0, leaf, 1.0) for leaf in range(1, 5)]).run({0: 1.0})
    assert ranks == pytest.approx([2 / 3] + [1 / 12] * 4, abs=1e-6)


def test_dangling_seed_and_isolated_node() -> None:
    # a - b, z isolated (a dangling node: it sends nothing on), w isolated and unseeded;
    # seeds a and z, 1/2 each. The sub-stochastic system:
    #   x_z = (1 - d) / 2,  x_a = d x_b + (1 - d) / 2,  x_b = d x_a,  x_w = 0
    #   => x_a = 1 / (2 (1 + d)),  x_b = d / (2 (1 + d)),  sum = (2 - d) / 2.
    # Normalised: x_z = (1 - d) / (2 - d) = 1/3,  x_a = 1 / ((1 + d)(2 - d)) = 4/9,
    # x_b = 2/9 -- networkx's answer, where z's mass returns to the seeds.
    ranks = engine_with(4, [(0, 1, 1.0)]).run({0: 1.0, 2: 1.0})
    assert ranks == pytest.approx([4 / 9, 2 / 9, 1 / 3, 0.0], abs=1e-6)
    assert order(ranks) == [0, 2, 1, 3]
    graph = nx.Graph([(0, 1)])
    graph.add_nodes_from([2, 3])
    theirs = nx.pagerank(graph, alpha=D, personalization={0: 1.0, 2: 1.0}, tol=1e-12)
    assert ranks == pytest.approx([theirs[n] for n in range(4)], abs=1e-6)


def test_weighted_edge() -> None:
    # a -3- b -1- c, seed b; degrees 3, 4, 1. b sends 3/4 of its mass to a, 1/4 to c:
    #   x_b = d (x_a + x_c) + (1 - d),  x_a = 3 d x_b / 4,  x_c = d x_b / 4
    #   => x_b = 1 / (1 + d) = 2/3,  x_a = 3 d / (4 (1 + d)) = 1/4,  x_c = 1/12.
    ranks = engine_with(3, [(0, 1, 3.0), (1, 2, 1.0)]).run({1: 1.0})
    assert ranks == pytest.approx([1 / 4, 2 / 3, 1 / 12], abs=1e-6)
    assert order(ranks) == [1, 0, 2]


def test_damping_is_networkx_alpha() -> None:
    # a - b, seed a, d = 0.85: x_a = 1 / (1 + d) = 1/1.85, x_b = d / (1 + d) = 0.85/1.85.
    ranks = engine_with(2, [(0, 1, 1.0)], damping=0.85).run({0: 1.0})
    assert ranks == pytest.approx([1 / 1.85, 0.85 / 1.85], abs=1e-6)


@pytest.mark.parametrize("fold_fraction", [0.0, 10.0])  # the change folded in / kept apart
def test_edge_removed_by_a_negative_delta(fold_fraction: float) -> None:
    # a -1- b -W- c, seed a, where W = 0.9313 (a synonym) + 1 (a fact); degrees 1, 1 + W, W:
    #   x_a = d x_b / (1 + W) + (1 - d),  x_b = d (x_a + x_c),  x_c = d W x_b / (1 + W)
    #   => x_b = d / (1 + d) = 1/3,  x_a = 1/2 + 1 / (6 (1 + W)),  x_c = W / (6 (1 + W)).
    # Then b - c loses all its support as one delta of -1.9313, which does not cancel
    # exactly against float32's 0.9313 + 1 (it left -1.2e-7 in the change matrix, or
    # +4.4e-8 in the main one, and c a mass of -2e-8 or +7e-9). What is left is a - b
    # with c isolated: x_a = 2/3, x_b = 1/3, x_c = 0 exactly (nothing reaches c).
    engine = engine_with(3, [(0, 1, 1.0), (1, 2, 0.9313)], fold_fraction=fold_fraction)
    engine.add_weight(1, 2, 1.0)
    total = 1.9313
    before = [1 / 2 + 1 / (6 * (1 + total)), 1 / 3, total / (6 * (1 + total))]
    assert engine.run({0: 1.0}) == pytest.approx(before, abs=1e-6)
    engine.add_weight(1, 2, -total)
    ranks = engine.run({0: 1.0})
    assert ranks == pytest.approx([2 / 3, 1 / 3, 0.0], abs=1e-6)
    assert ranks[2] == 0.0
    assert engine.degree(2) == pytest.approx(0.0, abs=1e-9)
    assert engine.stats.folds == (2 if fold_fraction == 0.0 else 0)


@pytest.mark.parametrize("fold_fraction", [0.0, 10.0])
def test_weight_lowered_by_a_negative_delta(fold_fraction: float) -> None:
    # a -3- b -1- c lowered to a -1- b -1- c by a delta of -2 on a - b; seed b:
    #   x_b = 1 / (1 + d) = 2/3, x_a = x_c = d / (2 (1 + d)) = 1/6 (the middle-seeded path).
    engine = engine_with(3, [(0, 1, 3.0), (1, 2, 1.0)], fold_fraction=fold_fraction)
    engine.run({1: 1.0})
    engine.add_weight(0, 1, -2.0)
    assert engine.run({1: 1.0}) == pytest.approx([1 / 6, 2 / 3, 1 / 6], abs=1e-6)


# -- against networkx -----------------------------------------------------------------------


@pytest.mark.parametrize("damping", [0.5, 0.85])
def test_random_weighted_graph_matches_networkx(damping: float) -> None:
    rng = np.random.default_rng(11)
    graph = nx.gnm_random_graph(40, 90, seed=11)
    graph.add_node(40)  # isolated
    edges = [(u, v, float(rng.uniform(0.5, 3.0))) for u, v in graph.edges]
    for u, v, weight in edges:
        graph.edges[u, v]["weight"] = weight
    seeds = {3: 0.2, 17: 1.0, 40: 0.5}
    theirs = nx.pagerank(graph, alpha=damping, personalization=seeds, tol=1e-14, max_iter=1000)
    expected = np.array([theirs[n] for n in range(41)])
    exact = engine_with(41, edges, damping=damping, tol=1e-12, max_iter=1000, dtype=np.float64)
    assert np.abs(exact.run(seeds) - expected).max() < 1e-9
    fast = engine_with(41, edges, damping=damping)  # float32, tol 1e-6
    ranks = fast.run(seeds)
    assert np.abs(ranks - expected).sum() < 1e-6
    assert order(ranks)[:10] == order(expected)[:10]


# -- convergence ----------------------------------------------------------------------------


def conversation_graph(
    passages: int, topics: int, seed: int, **options: object
) -> tuple[PersonalizedPageRank, list[int]]:
    """Return a graph shaped like a dialogue's, and its passage nodes.

    Two speaker hubs (nodes 0 and 1) share the passages between them; each passage also
    names up to three of ``topics`` entities, some of which are synonyms (0.8-1.0).
    """
    rng = np.random.default_rng(seed)
    first = 2 + topics
    engine = PersonalizedPageRank(**options)  # type: ignore[arg-type]
    engine.add_nodes(range(first + passages))
    us, vs, weights = [], [], []
    for passage in range(first, first + passages):
        named = rng.choice(topics, rng.integers(0, 4), replace=False)
        for end in [passage % 2] + [2 + int(t) for t in named]:
            us.append(passage)
            vs.append(end)
            weights.append(1.0)
    for _ in range(40):
        a, b = rng.choice(topics, 2, replace=False)
        us.append(2 + int(a))
        vs.append(2 + int(b))
        weights.append(round(float(rng.uniform(0.8, 1.0)), 4))
    engine.add_weights(np.array(us), np.array(vs), np.array(weights))
    return engine, list(range(first, first + passages))


def test_a_walk_held_up_by_a_hub_stops_at_the_rounding_floor(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Regression: from a passage of a speaker with 500 passages, the speaker holds 8-29%
    # of the mass and sums 500 terms per step in float32; that rounding (some 1e-6 in
    # L1) can exceed the 1e-6 * (1 - d) / d threshold: the walk cycled between two
    # vectors 1e-6 apart and ran out its 100 iterations with a warning, on 12 of these
    # 50 queries. Now it stops once the change no longer shrinks, as exact as float32 can
    # be (float64 from the same seeds is the reference).
    fast, passages = conversation_graph(1000, 300, seed=2)
    exact, _ = conversation_graph(1000, 300, seed=2, dtype=np.float64, tol=1e-12, max_iter=500)
    iterations = []
    with caplog.at_level(logging.DEBUG, logger="agentmem.stores.graph.ppr"):
        for passage in passages[:50]:
            ranks = fast.run({passage: 1.0})
            iterations.append(fast.stats.iterations)
            assert np.abs(ranks - exact.run({passage: 1.0})).sum() < 2e-5
    assert max(iterations) < 50, iterations
    assert fast.stats.unconverged == 0
    assert not [r for r in caplog.records if "did not converge" in r.getMessage()]


def test_a_walk_that_cannot_converge_is_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Three steps cannot bring a path's change under 1e-12; every query says so at
    # debug level, and only the first of the process at warning level.
    with caplog.at_level(logging.DEBUG, logger="agentmem.stores.graph.ppr"):
        for _ in range(2):
            engine = engine_with(
                3, [(0, 1, 1.0), (1, 2, 1.0)], tol=1e-12, max_iter=3, dtype=np.float64
            )
            engine.run({0: 1.0})
            engine.run({2: 1.0})
            assert engine.stats.unconverged == 2
    reports = [r for r in caplog.records if "did not converge" in r.getMessage()]
    assert len(reports) == 4
    assert len([r for r in reports if r.levelno == logging.WARNING]) <= 1


def test_a_negative_net_weight_is_not_taken_for_rounding() -> None:
    # a -5- b and a -(-4)- c: a's degree is 1, so its column of A D^-1 sums to 9 in
    # absolute value and the walk grows instead of contracting. That is no rounding:
    # the engine must run out its iterations and count the failure.
    engine = engine_with(3, [(0, 1, 5.0), (0, 2, -4.0)], max_iter=30)
    engine.run({0: 1.0})
    assert engine.stats.iterations == 30
    assert engine.stats.unconverged == 1
