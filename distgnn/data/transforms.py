"""Feature preprocessing in one place, recorded with the data.

Both ``python -m distgnn.train --dataset SPEC`` and ``python -m distgnn.partition SPEC`` read a
dataset through :func:`load_dataset` / :func:`apply_transform`, so a graph trained on one process
and the same graph partitioned for distributed training carry exactly the same features. The
transforms applied are listed in :attr:`GraphData.transforms` and in a partition's manifest
(``"transforms"``).

=================  ========================================================================
transform          effect
=================  ========================================================================
``none``           features unchanged (records nothing)
``row-normalize``  every row of ``x`` divided by its sum, ``x_i / Σ_f x_if`` (Kipf & Welling's
                   Planetoid preprocessing); rows whose sum is not positive stay unchanged
=================  ========================================================================

Defaults (:func:`default_transform`): ``row-normalize`` for Planetoid datasets (``cora``,
``citeseer``, ``pubmed``, ``planetoid:NAME``), ``none`` for everything else.
"""
from __future__ import annotations

import os

import torch

from .dataset import DataError, GraphData

__all__ = ["PLANETOID", "TRANSFORMS", "apply_transform", "default_transform", "load_dataset"]

TRANSFORMS = ("none", "row-normalize")
PLANETOID = ("cora", "citeseer", "pubmed")


def _is_planetoid(spec: str) -> bool:
    return spec in PLANETOID or spec.startswith("planetoid:")


def default_transform(spec: str) -> str:
    """The transform a dataset spec gets when none is named: ``row-normalize`` for Planetoid."""
    return "row-normalize" if _is_planetoid(spec) else "none"


def _row_normalize(x: torch.Tensor) -> torch.Tensor:
    s = x.sum(dim=1, keepdim=True)  # (N, 1)
    return torch.where(s > 0, x / s.clamp_min(torch.finfo(x.dtype).tiny), x)  # (N, F)


def apply_transform(data: GraphData, name: str) -> GraphData:
    """A new :class:`GraphData` with transform ``name`` applied to ``x`` and recorded in
    ``transforms`` (``none`` returns ``data`` itself; a transform already recorded is not applied
    twice).

    Raises:
        DataError: an unknown name (lists :data:`TRANSFORMS`), or ``row-normalize`` on a graph
        without node features.
    """
    if name not in TRANSFORMS:
        raise DataError(f"unknown transform {name!r}; choose one of {', '.join(TRANSFORMS)}")
    if name == "none" or name in data.transforms:
        return data
    if data.x is None:
        raise DataError(f"transform {name!r}: {data.name!r} has no node features (use --transform none)")
    return data.with_(x=_row_normalize(data.x), transforms=tuple(data.transforms) + (name,))


def load_dataset(spec: str, *, transform: str | None = None, seed: int = 0) -> GraphData:
    """The dataset ``spec`` names, with its feature transform applied and recorded.

    Args:
        spec: ``synthetic`` | ``synthetic:NUM_NODES`` (the built-in stochastic block model, 10,000
            nodes by default) | ``synthetic:products[,scale=S]`` (an ogbn-products-sized twin,
            :func:`~distgnn.data.synthetic.products`) | ``cora``, ``citeseer``, ``pubmed`` or ``planetoid:NAME[,root=DIR]``
            | ``sbm:KEY=VALUE,...`` | ``rmat:KEY=VALUE,...`` | ``ogb:DIR[,split=S]`` (an ``ogb``
            download read offline, :func:`~distgnn.data.load_ogb`) | a ``.npz`` file, an edge-list table
            or a partition directory (read as ``python -m distgnn.partition`` reads its INPUT).
        transform: one of :data:`TRANSFORMS`; ``None``: :func:`default_transform` of ``spec``.
        seed: the generator seed of ``synthetic``.

    Raises:
        DataError: an unknown spec or transform, or malformed data.
    """
    if transform is not None and transform not in TRANSFORMS:
        raise DataError(f"unknown transform {transform!r}; choose one of {', '.join(TRANSFORMS)}")
    name = transform or default_transform(spec)
    if spec == "synthetic" or spec.startswith("synthetic:"):
        from .synthetic import synthetic

        data = synthetic(spec.partition(":")[2], seed=seed)
    else:
        head = spec.partition(":")[0]
        known = (spec in PLANETOID or head in ("planetoid", "sbm", "rmat", "ogb")
                 or os.path.exists(spec) or "://" in spec)
        if not known:
            raise DataError(f"unknown dataset {spec!r}: use synthetic[:NUM_NODES], cora, citeseer, pubmed, "
                            "planetoid:NAME, sbm:..., rmat:..., ogb:DIR, a .npz/.parquet/.csv file or a "
                            "partition directory")
        from ..partition.errors import PartitionError
        from ..partition.inputs import open_input

        try:
            data = open_input(f"planetoid:{spec}" if spec in PLANETOID else spec)
        except PartitionError as err:
            raise DataError(str(err)) from None
    return apply_transform(data, name)
