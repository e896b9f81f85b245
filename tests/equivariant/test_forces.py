"""Training an equivariant potential on energies AND forces.

A small model (two MessagePass layers with a scalar-gated nonlinearity and a per-atom energy
readout) is fitted to a synthetic Morse cluster: the loss uses ``F = -dE/dpos`` built with
``create_graph=True``, so every training step differentiates twice. On a graph split into 3
in-process parts, the total energy is summed over all atoms through ``graph.all_reduce`` and the
forces and the parameter gradients of the force loss (a second derivative across the cut) equal
the whole-graph ones.
"""
from __future__ import annotations

import functools

import torch
from torch import nn

from distgnn.equivariant import Dense, MessagePass, basis, edge_vectors, radial
from distgnn.graph import Graph, run_parts, split_graph

from tests.equivariant.common import DT, gen

CUTOFF = 3.0


def morse(pos: torch.Tensor, frame: torch.Tensor, d0=1.0, a=1.5, r0=1.2) -> torch.Tensor:
    """Energy of every frame: sum over atom pairs of ``d0 (1 - exp(-a (r - r0)))^2``."""
    n = pos.shape[0]
    i, j = torch.triu_indices(n, n, 1)
    same = frame[i] == frame[j]
    i, j = i[same], j[same]
    r = (pos[i] - pos[j]).norm(dim=-1)
    pair = d0 * (1 - torch.exp(-a * (r - r0))) ** 2
    return torch.zeros(int(frame.max()) + 1, dtype=pos.dtype).index_add(0, frame[i], pair)


def frames(num: int = 12, atoms: int = 8, seed: int = 0):
    """``num`` jittered copies of one cluster, as one disjoint graph: positions, frame of every
    atom, radius edges (within frames) as a distgnn Graph, reference energies and forces."""
    g = gen(seed)
    base = torch.tensor([[0, 0, 0], [1.2, 0, 0], [0, 1.2, 0], [0, 0, 1.2], [1.2, 1.2, 0], [1.2, 0, 1.2],
                         [0, 1.2, 1.2], [1.2, 1.2, 1.2]], dtype=DT)[:atoms]
    pos = torch.cat([base + 0.12 * torch.randn(atoms, 3, generator=g, dtype=DT) for _ in range(num)])
    frame = torch.arange(num).repeat_interleave(atoms)
    d = torch.cdist(pos, pos)
    dst, src = torch.nonzero((d < CUTOFF) & (d > 0) & (frame[:, None] == frame[None, :]), as_tuple=True)
    p = pos.clone().requires_grad_()
    e = morse(p, frame)
    f = -torch.autograd.grad(e.sum(), p)[0]
    return pos, frame, Graph(torch.stack([src, dst]), pos.shape[0]), e.detach(), f


class Potential(nn.Module):
    """Per-atom energies from two equivariant message-passing steps.

    ``h1 = MessagePass(x0)`` (degrees 0..1 from a learned scalar embedding), gated (``silu`` on
    the scalars, vectors scaled by ``sigmoid`` of scalars: equivariant), mixed by a Dense, then a
    second MessagePass to scalars and a linear readout.
    """

    def __init__(self, features: int = 8, num_basis: int = 6):
        super().__init__()
        self.features, self.num_basis = features, num_basis
        self.embed = nn.Parameter(torch.randn(features, generator=gen(1), dtype=DT) * 0.5)
        self.mp1 = MessagePass(max_degree=1, in_features=features, in_parity=1, in_max_degree=0,
                               num_basis=num_basis, basis_max_degree=1)
        self.mix = Dense(features, in_features=features, in_parity=1, in_max_degree=1)
        self.gate = Dense(features, in_features=features, in_parity=1, in_max_degree=0)
        self.mp2 = MessagePass(max_degree=0, in_features=features, in_parity=1, in_max_degree=1,
                               num_basis=num_basis, basis_max_degree=1)
        self.readout = nn.Linear(features, 1, dtype=DT)

    def local_energies(self, pos: torch.Tensor, graph) -> torch.Tensor:
        """``[N]`` energies of the atoms ``graph`` owns (``pos``: their positions)."""
        b = basis(edge_vectors(pos, graph), max_degree=1, num=self.num_basis,
                  radial_fn=functools.partial(radial.basic_gaussian, limit=CUTOFF),
                  cutoff_fn=functools.partial(radial.smooth_cutoff, cutoff=CUTOFF))  # (E, 1, 4, K)
        x0 = self.embed.expand(pos.shape[0], 1, 1, -1)  # (N, 1, 1, F)
        h = self.mp1(x0, b, graph=graph)  # (N, 1, 4, F)
        h = self.mix(h)
        s = h[:, :, :1]  # (N, 1, 1, F) scalars
        gate = torch.sigmoid(self.gate(s))
        h = torch.cat([nn.functional.silu(s), h[:, :, 1:] * gate], dim=2)  # (N, 1, 4, F)
        out = self.mp2(h, b, graph=graph)  # (N, 1, 1, F)
        return self.readout(out[:, 0, 0]).squeeze(-1)  # (N,)


def model(seed: int = 0) -> Potential:
    torch.manual_seed(seed)
    return Potential().double()


def energy_and_forces(m: Potential, pos: torch.Tensor, frame: torch.Tensor, graph):
    p = pos.clone().requires_grad_()
    e_atoms = m.local_energies(p, graph)
    e = torch.zeros(int(frame.max()) + 1, dtype=DT).index_add(0, frame, e_atoms)  # (frames,)
    f = -torch.autograd.grad(e.sum(), p, create_graph=True)[0]  # (N, 3)
    return e, f


def loss_fn(e, f, e_ref, f_ref, atoms: int):
    return ((e - e_ref) ** 2).mean() / atoms + ((f - f_ref) ** 2).mean()


def test_training_on_energies_and_forces_decreases_the_loss():
    pos, frame, graph, e_ref, f_ref = frames()
    m = model()
    opt = torch.optim.Adam(m.parameters(), lr=2e-2)
    shift = e_ref.mean() / 8  # per-atom energy offset, as a readout bias start
    with torch.no_grad():
        m.readout.bias.fill_(float(shift))
    history = []
    for _ in range(120):
        opt.zero_grad()
        e, f = energy_and_forces(m, pos, frame, graph)
        loss = loss_fn(e, f, e_ref, f_ref, 8)
        loss.backward()  # second derivative: d/dtheta of dE/dpos
        opt.step()
        history.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(history)))
    assert history[-1] < 0.05 * history[0], history[::10]  # measured: 3.3 -> 0.025
    e, f = energy_and_forces(m, pos, frame, graph)
    assert ((f - f_ref) ** 2).mean().sqrt() < 0.2 * (f_ref**2).mean().sqrt()  # forces within 20% rms
    # the fit generalises a little: held-out frames improve too
    pos_t, frame_t, graph_t, e_t, f_t = frames(num=4, seed=5)
    e, f = energy_and_forces(m, pos_t, frame_t, graph_t)
    e0, f0 = energy_and_forces(model(), pos_t, frame_t, graph_t)
    assert ((f - f_t) ** 2).mean() < ((f0 - f_t) ** 2).mean()


def test_forces_and_force_loss_gradients_on_3_parts_equal_the_whole_graph():
    pos0, frame, graph, e_ref, f_ref = frames(num=3, seed=2)
    n = pos0.shape[0]
    m = model(1)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen(4), dtype=DT))

    # whole graph
    pos = pos0.clone().requires_grad_()
    e_atoms = m.local_energies(pos, graph)
    energy = e_atoms.sum()
    forces = -torch.autograd.grad(energy, pos, create_graph=True)[0]
    loss = (energy - e_ref.sum()) ** 2 / n + ((forces - f_ref) ** 2).sum()
    loss.backward()
    grads = {k: p.grad.clone() for k, p in m.named_parameters()}
    m.zero_grad()

    # 3 parts: atoms spread over parts so that every part has halo atoms from both others
    assignment = torch.arange(n) % 3
    parts = split_graph(graph, assignment)
    assert all(p.num_halo > 0 for p in parts)
    pos = pos0.clone().requires_grad_()
    totals = run_parts(parts, lambda p, g: g.all_reduce(m.local_energies(pos[g.node_ids], g).sum()))
    for t in totals[1:]:  # the all-reduce gives every part the same total, the whole graph's
        torch.testing.assert_close(t, totals[0], rtol=0, atol=0)
    torch.testing.assert_close(totals[0], energy.detach(), rtol=1e-12, atol=1e-12)
    # forces: the total is one function of every part's positions (halo positions crossed the
    # cut through gather_src), so one gradient gives every atom's force
    forces_p = -torch.autograd.grad(totals[0], pos, create_graph=True)[0]
    torch.testing.assert_close(forces_p, forces.detach(), rtol=1e-11, atol=1e-11)
    loss_p = (totals[0] - e_ref.sum()) ** 2 / n + ((forces_p - f_ref) ** 2).sum()
    loss_p.backward()  # parameter gradients of the force loss: a second derivative across the cut
    for k, p in m.named_parameters():
        torch.testing.assert_close(p.grad, grads[k], rtol=1e-10, atol=1e-10, msg=lambda msg, k=k: f"{k}: {msg}")
    assert forces.abs().max() > 1e-3 and min(float(g.abs().max()) for g in grads.values()) > 0
