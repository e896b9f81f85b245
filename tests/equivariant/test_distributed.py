"""MessagePass on 2 real processes (gloo, spawned ranks) with the collective halo exchange:
outputs and gradients w.r.t. features, positions and parameters equal the whole graph's, and so
do forces ``-dE/dpos`` and the parameter gradients of a force loss (a second derivative through
the exchange)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.launch.spawn import run_ranks


def _setup():
    from distgnn.equivariant import MessagePass
    from distgnn.graph import Graph, split_graph

    from tests.equivariant.common import cloud, features, gen, radius_edges

    n = 10
    pos = cloud(n, 4, scale=1.4)
    dst, src = radius_edges(pos, 2.5)
    edge_index = torch.stack([src, dst])
    assignment = torch.tensor([0, 1] * 5)
    parts = split_graph(edge_index, assignment, n, num_parts=2)
    x = features(n, 1, 1, 3, 5)
    torch.manual_seed(0)
    mp = MessagePass(max_degree=2, use_basis_bias=True).double()
    mp.materialize(1, 1, 3, 4, 2)
    with torch.no_grad():
        for p in mp.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen(7), dtype=p.dtype))
    weight = torch.randn(n, 2, 9, 3, generator=gen(8), dtype=torch.float64)
    return n, pos, x, Graph(edge_index, n), parts, mp, weight


def _energy(mp, x, pos, g):
    """Per-node energy of one layer: a quadratic readout of the invariant (0, +) channel."""
    from distgnn.equivariant import edge_vectors

    from tests.equivariant.test_message_pass import edge_basis_from_vectors

    out = mp(x, edge_basis_from_vectors(edge_vectors(pos, g)), graph=g)  # (N, 2, 9, F)
    return out, (out[:, 0, 0, :] ** 2).sum(-1)  # (N,)


def _rank(rank, world_size):
    from distgnn.launch import collective_part

    n, pos0, x0, _, parts, mp, weight = _setup()
    g = collective_part(parts, rank)
    ids = g.node_ids
    x = x0[ids].clone().requires_grad_()
    pos = pos0[ids].clone().requires_grad_()
    out, e_node = _energy(mp, x, pos, g)
    (out * weight[ids]).sum().backward()
    grads = dict(out=out.detach().numpy(), gx=x.grad.numpy(), gpos=pos.grad.numpy(),
                 gparams=[p.grad.numpy().copy() for p in mp.parameters()])
    # forces: dE_local/dpos_local; the gather's backward brings the other rank's halo terms
    mp.zero_grad()
    pos = pos0[ids].clone().requires_grad_()
    _, e_node = _energy(mp, x0[ids], pos, g)
    forces = -torch.autograd.grad(e_node.sum(), pos, create_graph=True)[0]  # (N_p, 3)
    energy = g.all_reduce(e_node.sum())
    target = torch.linspace(-1, 1, forces.numel(), dtype=torch.float64).view(forces.shape)
    loss = (forces - target).pow(2).sum() + (energy - 1.0) ** 2 / world_size  # replicated term once in total
    loss.backward()
    grads.update(node_ids=ids.numpy(), forces=forces.detach().numpy(), energy=float(energy.detach()),
                 fparams=[p.grad.numpy().copy() for p in mp.parameters()])
    return grads


@pytest.mark.multiprocess
def test_two_gloo_ranks_equal_the_whole_graph(tmp_path):
    results = run_ranks(_rank, 2, tmp_path, timeout=120)
    n, pos0, x0, g, parts, mp, weight = _setup()
    x = x0.clone().requires_grad_()
    pos = pos0.clone().requires_grad_()
    out, _ = _energy(mp, x, pos, g)
    (out * weight).sum().backward()
    gparams = [p.grad.clone() for p in mp.parameters()]
    gpos = pos.grad.numpy().copy()
    mp.zero_grad()
    pos = pos0.clone().requires_grad_()
    _, e_node = _energy(mp, x0, pos, g)
    energy = e_node.sum()
    forces = -torch.autograd.grad(energy, pos, create_graph=True)[0]
    loss = 0.0
    for res in results:  # the same per-rank targets, on the whole graph
        ids = torch.as_tensor(res["node_ids"])
        target = torch.linspace(-1, 1, 3 * ids.numel(), dtype=torch.float64).view(-1, 3)
        loss = loss + (forces[ids] - target).pow(2).sum()
    loss = loss + (energy - 1.0) ** 2
    loss.backward()
    total_gp = [sum(r["gparams"][i] for r in results) for i in range(len(gparams))]
    total_fp = [sum(r["fparams"][i] for r in results) for i in range(len(gparams))]
    for res in results:
        ids = res["node_ids"]
        np.testing.assert_allclose(res["out"], out.detach().numpy()[ids], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(res["gx"], x.grad.numpy()[ids], rtol=1e-11, atol=1e-11)
        np.testing.assert_allclose(res["gpos"], gpos[ids], rtol=1e-11, atol=1e-11)
        np.testing.assert_allclose(res["forces"], forces.detach().numpy()[ids], rtol=1e-11, atol=1e-11)
        assert res["energy"] == pytest.approx(float(energy.detach()), rel=1e-12)
    for a, b in zip(total_gp, gparams):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-11, atol=1e-11)
    for a, p in zip(total_fp, mp.parameters()):  # second derivatives (force loss) through the exchange
        np.testing.assert_allclose(a, p.grad.numpy(), rtol=1e-10, atol=1e-10)
    assert np.abs(forces.detach().numpy()).max() > 1e-3

