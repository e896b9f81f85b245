"""Synthetic graphs: a stochastic block model with class features, and R-MAT power-law graphs.

Both generators are vectorised (no Python loop over nodes or edges) and deterministic for a given
``seed``: they draw from their own ``torch.Generator`` and never touch the global RNG.
"""
from __future__ import annotations

import logging
import math

import torch
from torch import Tensor

from .dataset import DataError, GraphData, simple_edge_index

log = logging.getLogger(__name__)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise DataError(message)


def _check_count(name: str, value: int, minimum: int = 0) -> None:
    _require(
        isinstance(value, int) and not isinstance(value, bool) and value >= minimum,
        f"{name} must be an int >= {minimum}, got {value!r}",
    )


def _class_blocks(y: Tensor, num_classes: int, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """Nodes grouped by class in random order within each class.

    Returns ``(members [N], start [C], count [C])``: class ``c``'s nodes are
    ``members[start[c] : start[c] + count[c]]``.
    """
    perm = torch.randperm(len(y), generator=gen)
    members = perm[torch.argsort(y[perm], stable=True)]
    count = torch.bincount(y, minlength=num_classes)
    return members, torch.cumsum(count, 0) - count, count


def _power_law_weights(n: int, exponent: float, gen: torch.Generator) -> Tensor:
    """``[n]`` float64 Pareto weights ``u^(-1/(exponent-1))`` (tail ``P(w > t) ~ t^(1-exponent)``),
    capped at ``mean * sqrt(n) / 4`` so the largest expected degree stays near ``avg_degree * sqrt(n) / 4``
    (~20k on ogbn-products' 2.45M nodes, whose largest degree is 17k)."""
    u = torch.rand(n, generator=gen, dtype=torch.float64).clamp_min_(1e-12)
    w = u.pow_(-1.0 / (exponent - 1.0))
    return w.clamp_max_(float(w.mean()) * max(1.0, math.sqrt(n) / 4))


def _sbm_edges_weighted(y: Tensor, members: Tensor, start: Tensor, count: Tensor, num_edges: int,
                        homophily: float, weight: Tensor, gen: torch.Generator,
                        block: int = 1 << 22) -> tuple[Tensor, Tensor]:
    """Degree-corrected draws: as :func:`_sbm_edges`, every node picked with probability ``∝ weight``.

    The weights are first rounded to multiples of ``mean / 8`` (at least one): a table in which
    node ``i`` appears that many times, classes in blocks (``~8N`` int32 entries), turns every
    weighted draw into one uniform index (no binary search). Drawn ``block`` edges at a time, so
    the temporaries stay ~100 MB at any size.
    """
    copies = torch.round(weight[members] * (8.0 / float(weight.mean()))).long().clamp_min_(1)  # (N,)
    dtype = torch.int32 if len(y) < 2**31 else torch.long
    table = torch.repeat_interleave(members.to(dtype), copies)  # (T,) node ids, class blocks in order
    bounds = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(copies, 0)])  # (N+1,)
    del copies
    total = len(table)
    block_lo = bounds[start].double()  # (C,) table offset of class c's block
    block_w = bounds[start + count].double() - block_lo  # (C,) class c's table length
    del bounds

    src = torch.empty(num_edges, dtype=torch.long)
    dst = torch.empty(num_edges, dtype=torch.long)
    for at in range(0, num_edges, block):
        m = min(block, num_edges - at)
        s = table[torch.rand(m, generator=gen, dtype=torch.float64).mul_(total).long()].long()
        c = y[s]
        u = torch.rand(m, generator=gen, dtype=torch.float64)
        others = total - block_w[c]
        same = (torch.rand(m, generator=gen) < homophily) | (others <= 0)
        # same class: a uniform entry of c's block; other class: a uniform entry of the rest,
        # skipping c's block (an offset past it).
        x = torch.where(same, block_lo[c] + u * block_w[c], u * others)
        x = torch.where(~same & (x >= block_lo[c]), x + block_w[c], x)
        src[at : at + m], dst[at : at + m] = s, table[x.long().clamp_max_(total - 1)]
    return src, dst


def _sbm_edges(y: Tensor, members: Tensor, start: Tensor, count: Tensor, num_edges: int,
               homophily: float, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """``num_edges`` draws ``src -> dst``: ``dst`` shares ``src``'s class with probability ``homophily``."""
    n = len(y)
    src = torch.randint(n, (num_edges,), generator=gen)
    c = y[src]
    u = torch.rand(num_edges, generator=gen, dtype=torch.float64)
    # Same class: a uniform member of class c. Other class: a uniform member of the other
    # classes, i.e. a uniform position in `members` that skips class c's block.
    others = n - count[c]
    same = (torch.rand(num_edges, generator=gen) < homophily) | (others == 0)
    pos_same = start[c] + (u * count[c]).long()
    pos_other = (u * others).long()
    pos_other = pos_other + (pos_other >= start[c]) * count[c]
    dst = members[torch.where(same, pos_same, pos_other)]
    return src, dst


def _split_masks(y: Tensor, members: Tensor, start: Tensor, count: Tensor, train_per_class: int,
                 num_val: int, num_test: int, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """``train_per_class`` random nodes per class (fewer if a class is smaller), then disjoint val/test."""
    n = len(y)
    rank = torch.arange(n) - torch.repeat_interleave(start, count)  # rank within its class block
    train = torch.zeros(n, dtype=torch.bool)
    train[members[rank < train_per_class]] = True
    small = count < train_per_class
    if bool(small.any()):
        log.warning("sbm: classes %s have fewer than train_per_class=%d nodes; using all of them",
                    small.nonzero().flatten().tolist(), train_per_class)
    rest = (~train).nonzero().flatten()
    rest = rest[torch.randperm(len(rest), generator=gen)]
    num_val, num_test = _fit_split(len(rest), num_val, num_test)
    val, test = torch.zeros(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)
    val[rest[:num_val]] = True
    test[rest[num_val : num_val + num_test]] = True
    return train, val, test


def _fit_split(left: int, num_val: int, num_test: int) -> tuple[int, int]:
    """Val/test sizes that fit in the ``left`` non-training nodes (shrunk in proportion if needed)."""
    if num_val + num_test <= left:
        return num_val, num_test
    if left < (num_val > 0) + (num_test > 0):
        raise DataError(
            f"sbm: no nodes left for validation/test after the training nodes ({left} left); "
            "lower train_per_class or add nodes"
        )
    val = min(num_val, max(int(num_val > 0), left * num_val // (num_val + num_test)))
    test = min(num_test, left - val)
    log.warning("sbm: num_val=%d + num_test=%d exceed the %d non-training nodes; using %d and %d",
                num_val, num_test, left, val, test)
    return val, test


def sbm(
    num_nodes: int = 10_000,
    num_classes: int = 5,
    avg_degree: float = 10.0,
    homophily: float = 0.8,
    num_features: int = 32,
    feature_noise: float = 1.0,
    train_per_class: int = 20,
    num_val: int = 500,
    num_test: int = 1000,
    undirected: bool = True,
    seed: int = 0,
    degree_exponent: float | None = None,
) -> GraphData:
    """A stochastic block model with Gaussian class features, for node classification.

    Classes are assigned uniformly at random. Each of ``round(num_nodes * avg_degree / 2)``
    draws (``num_nodes * avg_degree`` when directed) picks a uniform source and, with probability
    ``homophily``, a uniform target of the same class, else a uniform target of another class, so
    ``homophily`` is the expected fraction of same-class edges (edge homophily). Self-loops and
    duplicates are removed (the mean degree is therefore slightly below ``avg_degree``), and with
    ``undirected`` every edge is present in both directions.

    Features: class ``c``'s centroid is a standard Gaussian vector scaled to length
    ``1/sqrt(2)`` (centroids lie ~1 apart); a node's features are its centroid plus Gaussian noise
    of std ``feature_noise`` per dimension. With the defaults a linear classifier on the features
    alone is weak (~25% test accuracy, chance is 20%) while a 2-layer GCN, which averages over
    neighbours, reaches ~90% (measured over 3 seeds: 89-92%; ``feature_noise=1.5``: ~75%).

    ``degree_exponent`` (``None``: every node equally likely, Poisson degrees): a degree-corrected
    model instead. Every node gets a Pareto weight with tail exponent ``degree_exponent`` (2 < γ,
    e.g. 2.5), capped at ``mean * sqrt(num_nodes) / 4``; both ends of every draw are picked with
    probability proportional to their weight (within the target's class block as above), so
    expected degrees follow the weights: a power law ``P(deg >= d) ~ d^(1-γ)``. The duplicates a
    power law makes (hub pairs drawn twice) are removed, so the mean degree falls further below
    ``avg_degree`` than without it.

    Masks: ``train_per_class`` random nodes of each class (all of a class's nodes when it is
    smaller), then ``num_val`` and ``num_test`` random nodes among the rest; the three are disjoint.
    On a small graph val and test shrink in proportion to fit the non-training nodes (with a
    warning); :class:`DataError` if no node is left for them.

    Returns:
        :class:`GraphData` with ``edge_index`` ``[2, E]``, ``x`` ``[N, num_features]`` float32
        (``None`` when ``num_features == 0``), ``y`` ``[N]`` int64 and the three ``[N]`` masks.
    """
    for name, value in (("num_nodes", num_nodes), ("num_features", num_features),
                        ("train_per_class", train_per_class), ("num_val", num_val), ("num_test", num_test)):
        _check_count(name, value)
    _check_count("num_classes", num_classes, minimum=1)
    _require(num_classes <= num_nodes, f"num_classes={num_classes} exceeds num_nodes={num_nodes}")
    _require(0.0 <= homophily <= 1.0, f"homophily must lie in [0, 1], got {homophily}")
    _require(math.isfinite(avg_degree) and avg_degree >= 0, f"avg_degree must be >= 0, got {avg_degree}")
    _require(math.isfinite(feature_noise) and feature_noise >= 0,
             f"feature_noise must be >= 0, got {feature_noise}")
    _require(degree_exponent is None or (math.isfinite(degree_exponent) and degree_exponent > 2),
             f"degree_exponent must be > 2 (or None for uniform degrees), got {degree_exponent}")

    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(num_classes, (num_nodes,), generator=gen)
    members, start, count = _class_blocks(y, num_classes, gen)
    draws = round(num_nodes * avg_degree / (2 if undirected else 1))
    if degree_exponent is None:
        src, dst = _sbm_edges(y, members, start, count, draws, homophily, gen)
    else:
        weight = _power_law_weights(num_nodes, degree_exponent, gen)
        src, dst = _sbm_edges_weighted(y, members, start, count, draws, homophily, weight, gen)
        del weight
    edge_index = simple_edge_index(src, dst, num_nodes, undirected=undirected)
    del src, dst

    x = None
    if num_features:
        centroids = torch.randn(num_classes, num_features, generator=gen)
        # Random directions of length 1/sqrt(2): two centroids lie ~1 apart (exactly for
        # orthogonal ones), so feature_noise is the ratio of noise to class separation.
        centroids = centroids / (centroids.norm(dim=1, keepdim=True).clamp_min(1e-12) * math.sqrt(2))
        x = torch.randn(num_nodes, num_features, generator=gen).mul_(feature_noise)  # (N, F)
        for lo in range(0, num_nodes, 1 << 16):  # centroids added in blocks: no second [N, F] temporary
            x[lo : lo + (1 << 16)] += centroids[y[lo : lo + (1 << 16)]]
    train, val, test = _split_masks(y, members, start, count, train_per_class, num_val, num_test, gen)
    data = GraphData(edge_index=edge_index, num_nodes=num_nodes, x=x, y=y, train_mask=train,
                     val_mask=val, test_mask=test, name=f"sbm-{num_nodes}",
                     meta={"generator": "sbm", "homophily": homophily, "seed": seed})
    log.info("generated %r", data)
    return data


def _rmat_draw(scale: int, count: int, thresholds: tuple[float, float, float],
               gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """``count`` R-MAT edges on ``2**scale`` nodes: one quadrant choice per level, all edges at once.

    ``thresholds`` are ``(a, a+b, a+b+c)``. Returns ``src, dst``, each ``[count]`` (int32 when
    ``scale < 31``, else int64).
    """
    dtype = torch.int32 if scale < 31 else torch.long  # int32 halves the memory traffic
    src = torch.zeros(count, dtype=dtype)
    dst = torch.zeros(count, dtype=dtype)
    r = torch.empty(count)
    t_a, t_ab, t_abc = thresholds
    for _ in range(scale):
        r.uniform_(generator=gen)
        # Quadrants a (src bit 0, dst bit 0) | b (0, 1) / c (1, 0) | d (1, 1):
        # src bit = [r >= a+b]; dst bit = [r >= a] xor [r >= a+b] xor [r >= a+b+c].
        src_bit = r >= t_ab
        dst_bit = (r >= t_a) ^ src_bit ^ (r >= t_abc)
        src.mul_(2).add_(src_bit)
        dst.mul_(2).add_(dst_bit)
    return src, dst


def _rmat_edges(num_nodes: int, num_edges: int, abcd: tuple[float, float, float, float], dedup: bool,
                gen: torch.Generator, max_rounds: int = 64) -> Tensor:
    """Draw until ``num_edges`` edges with ids < ``num_nodes`` exist (distinct and loop-free when ``dedup``).

    Returns ``[2, num_edges]`` int64, sorted by source then target when ``dedup``.
    """
    scale = max(1, math.ceil(math.log2(num_nodes)))
    thresholds = (abcd[0], abcd[0] + abcd[1], abcd[0] + abcd[1] + abcd[2])
    keys = torch.zeros(0, dtype=torch.long)
    yield_rate = 1.0  # the fraction of draws that add an edge, re-estimated each round
    for _ in range(max_rounds):
        need = num_edges - len(keys)
        if need <= 0:
            break
        batch = min(int(need / yield_rate * 1.1) + 64, 8 * num_edges + 1024)
        src, dst = _rmat_draw(scale, batch, thresholds, gen)
        keep = (src < num_nodes) & (dst < num_nodes)  # reject ids beyond num_nodes
        if dedup:
            keep &= src != dst
        before = len(keys)
        keys = torch.cat([keys, src[keep].long() * num_nodes + dst[keep]])
        if dedup:
            keys = torch.unique(keys)
        yield_rate = max((len(keys) - before) / batch, 1e-3)
    if len(keys) < num_edges:
        raise DataError(
            f"rmat: could not draw num_edges={num_edges} distinct edges in {max_rounds} rounds "
            f"(got {len(keys)}); lower num_edges, raise num_nodes or pass dedup=False"
        )
    # dedup: a uniform subset of the distinct edges (still sorted); else the first draws.
    keys = keys[_random_subset(len(keys), num_edges, gen)] if dedup else keys[:num_edges]
    return torch.stack([keys // num_nodes, keys % num_nodes])


def _random_subset(m: int, k: int, gen: torch.Generator) -> Tensor:
    """A uniform random ``k``-subset of ``range(m)`` as an ``[m]`` bool mask.

    Draws the smaller of the kept and dropped sets by repeated uniform draws (no full permutation).
    """
    flip = 2 * k > m
    j = m - k if flip else k
    picked = torch.zeros(0, dtype=torch.long)
    while len(picked) < j:
        missing = j - len(picked)  # draw a little more: a fraction <= j/m of the draws repeat
        extra = torch.randint(m, (missing + missing * j // (m - j) + 16,), generator=gen)
        picked = torch.unique(torch.cat([picked, extra]))
    picked = picked[torch.randperm(len(picked), generator=gen)[:j]]
    mask = torch.zeros(m, dtype=torch.bool)
    mask[picked] = True
    return ~mask if flip else mask


def rmat(
    num_nodes: int = 2**16,
    num_edges: int = 1_000_000,
    a: float = 0.57,
    b: float = 0.19,
    c: float = 0.19,
    d: float = 0.05,
    num_features: int = 0,
    num_classes: int = 0,
    undirected: bool = False,
    dedup: bool = True,
    seed: int = 0,
) -> GraphData:
    """An R-MAT power-law graph (Chakrabarti et al. 2004, https://doi.org/10.1137/1.9781611972740.43).

    Each edge descends ``ceil(log2(num_nodes))`` levels of the adjacency matrix, picking the
    quadrant ``a`` (top-left), ``b`` (top-right), ``c`` (bottom-left) or ``d`` (bottom-right) at
    each; all edges descend together, one vectorised step per level. When ``num_nodes`` is not a
    power of two, edges with an id ``>= num_nodes`` are rejected and redrawn (no modulo folding,
    which would bias low ids). Low ids are the hubs (ids are not permuted).

    Args:
        num_edges: edges drawn. With ``dedup`` (default) they are distinct and loop-free (more are
            drawn until ``num_edges`` distinct ones exist, then a uniform subset is kept); without
            it, duplicates and self-loops stay.
        a, b, c, d: quadrant probabilities; must sum to 1.
        num_features: when > 0, ``x`` is ``[N, num_features]`` standard Gaussian float32.
        num_classes: when > 0, ``y`` is uniform in ``[0, num_classes)`` and the masks are a random
            60/20/20 train/val/test split.
        undirected: add every reverse edge (so ``E`` is up to ``2 * num_edges``; with ``dedup`` the
            reverse of an edge already drawn is not added twice).

    Returns:
        :class:`GraphData` with ``edge_index`` ``[2, E]`` int64 (sorted when ``dedup``).
    """
    _check_count("num_nodes", num_nodes, minimum=1)
    _check_count("num_edges", num_edges)
    _check_count("num_features", num_features)
    _check_count("num_classes", num_classes)
    _require(num_classes <= num_nodes, f"num_classes={num_classes} exceeds num_nodes={num_nodes}")
    for name, p in (("a", a), ("b", b), ("c", c), ("d", d)):
        _require(0.0 <= p <= 1.0, f"{name} must lie in [0, 1], got {p}")
    _require(abs(a + b + c + d - 1.0) <= 1e-6, f"a+b+c+d must equal 1, got {a + b + c + d!r}")
    if dedup:
        _require(num_edges <= num_nodes * (num_nodes - 1),
                 f"num_edges={num_edges} exceeds the {num_nodes * (num_nodes - 1)} distinct non-loop "
                 f"edges of {num_nodes} nodes; lower num_edges or pass dedup=False")

    gen = torch.Generator().manual_seed(seed)
    edge_index = _rmat_edges(num_nodes, num_edges, (a, b, c, d), dedup, gen)
    if undirected and dedup:
        edge_index = simple_edge_index(edge_index[0], edge_index[1], num_nodes, undirected=True)
    elif undirected:
        edge_index = torch.cat([edge_index, edge_index.flip(0)], dim=1)

    x = torch.randn(num_nodes, num_features, generator=gen) if num_features else None
    y = masks = None
    if num_classes:
        y = torch.randint(num_classes, (num_nodes,), generator=gen)
        part = torch.randperm(num_nodes, generator=gen)
        n_train, n_val = int(0.6 * num_nodes), int(0.2 * num_nodes)
        bounds = ((0, n_train), (n_train, n_train + n_val), (n_train + n_val, num_nodes))
        masks = [torch.zeros(num_nodes, dtype=torch.bool) for _ in bounds]
        for m, (lo, hi) in zip(masks, bounds):
            m[part[lo:hi]] = True
    data = GraphData(edge_index=edge_index, num_nodes=num_nodes, x=x, y=y,
                     train_mask=masks[0] if masks else None, val_mask=masks[1] if masks else None,
                     test_mask=masks[2] if masks else None, name=f"rmat-{num_nodes}",
                     meta={"generator": "rmat", "abcd": (a, b, c, d), "seed": seed})
    log.info("generated %r", data)
    return data


# ogbn-products' sizes (Hu et al. 2020, https://ogb.stanford.edu/docs/nodeprop/#ogbn-products): nodes,
# features, classes and the sales-ranking split's train/valid counts. EDGES is the 61,859,140 of its
# raw edge list, taken here as directed edges (ogb's own loader adds the reverse of each: 123.7M).
PRODUCTS = {"num_nodes": 2_449_029, "num_edges": 61_859_140, "num_features": 100, "num_classes": 47,
            "num_train": 196_615, "num_val": 39_323}


def _pair_hash(src: Tensor, dst: Tensor, num_nodes: int, seed: int) -> Tensor:
    """A value in ``[0, 1)`` per edge, equal for ``(u, v)`` and ``(v, u)``: a Weyl sequence over the
    unordered pair's key (equidistributed, so a threshold keeps that fraction of the pairs)."""
    key = torch.minimum(src, dst) * num_nodes + torch.maximum(src, dst)
    phase = (seed * 0.7548776662466927) % 1.0
    return torch.frac(key.double().mul_(0.6180339887498949).add_(phase))


def products(scale: float = 1.0, *, seed: int = 0, degree_exponent: float = 2.5) -> GraphData:
    """A synthetic twin of ogbn-products (sizes in :data:`PRODUCTS`), ``scale`` times its size.

    A degree-corrected :func:`sbm` (power-law degrees with tail exponent ``degree_exponent``,
    homophily 0.8, Gaussian class features, undirected) with ``round(2,449,029 * scale)`` nodes,
    100 features, 47 classes and ``round(61,859,140 * scale)`` directed edges (both directions of
    ``~30.9M * scale`` pairs, the count within 0.2%): the sbm draws more pairs than needed (duplicates
    among hubs are removed) and a symmetric hash of each pair then keeps just enough of them, so the
    edge list stays sorted and symmetric. Masks: ``196,615 * scale`` training nodes (~8%, spread evenly over
    the classes), ``39,323 * scale`` validation nodes, the rest test, as in the sales-ranking split.
    Deviation: ogbn-products itself has 123.7M directed edges (``ogb`` adds every reverse edge
    to the 61.9M listed); this twin matches the 61.9M.

    Time and memory grow about linearly: at ``scale=0.1`` 4-10 s (one or two cores, busy machine)
    and 0.52 GB above the interpreter, so ~40 s and ~5 GB at full size (extrapolated; features
    alone are 1 GB, the edge list 1 GB).

    Raises:
        DataError: ``scale`` not in ``(0, 1000]`` or too small for 47 classes.
    """
    _require(isinstance(scale, (int, float)) and not isinstance(scale, bool) and 0 < scale <= 1000,
             f"products: scale must be a number in (0, 1000], got {scale!r}")
    p = PRODUCTS
    n = round(p["num_nodes"] * scale)
    _require(n >= 10 * p["num_classes"], f"products: scale={scale} gives {n} nodes, too few for "
             f"{p['num_classes']} classes (use scale >= {10 * p['num_classes'] / p['num_nodes']:.1e})")
    target = 2 * round(p["num_edges"] * scale / 2)
    per_class = max(1, round(p["num_train"] * scale / p["num_classes"]))
    num_val = round(p["num_val"] * scale)
    overshoot = 1.05 + 0.025 / math.sqrt(scale)  # duplicates lost: ~19% at scale 0.01, ~6% at 0.1
    data = sbm(num_nodes=n, num_classes=p["num_classes"], avg_degree=target / n * overshoot,
               num_features=p["num_features"], train_per_class=per_class, num_val=num_val,
               num_test=max(0, n - per_class * p["num_classes"] - num_val), seed=seed,
               degree_exponent=degree_exponent)
    ei = data.edge_index
    if data.num_edges > target:
        ei = ei[:, _pair_hash(ei[0], ei[1], n, seed) < target / data.num_edges]
    else:
        log.warning("products: %d directed edges, %.1f%% below the %d asked (more duplicates than expected)",
                    data.num_edges, 100 * (1 - data.num_edges / target), target)
    return data.with_(edge_index=ei, name="products" if scale == 1 else f"products-x{scale:g}",
                      meta={**data.meta, "generator": "products", "scale": scale})


def synthetic(spec: str = "", seed: int = 0) -> GraphData:
    """The graph ``synthetic[:SPEC]`` names: ``""`` (the default sbm, 10,000 nodes), ``NUM_NODES``
    (the default sbm with that many nodes) or ``products[,scale=S]`` (:func:`products`).

    Raises:
        DataError: anything else, naming the accepted forms.
    """
    head, _, opts = spec.partition(",")
    if head == "products":
        kwargs = {}
        for item in filter(None, (s.strip() for s in opts.split(","))):
            key, sep, value = item.partition("=")
            if key.strip() != "scale" or not sep:
                raise DataError(f"synthetic:{spec}: products takes only scale=S (a fraction of its size), got {item!r}")
            try:
                kwargs["scale"] = float(value)
            except ValueError:
                raise DataError(f"synthetic:{spec}: scale must be a number, got {value!r}") from None
        return products(**kwargs, seed=seed)
    if opts:
        raise DataError(f"synthetic:{spec}: options are for synthetic:products only")
    try:
        n = int(head) if head else 10_000
    except ValueError:
        raise DataError(f"dataset 'synthetic:{spec}': synthetic:NUM_NODES needs an integer or "
                        f"synthetic:products[,scale=S], got {head!r}") from None
    return sbm(num_nodes=n, seed=seed)
