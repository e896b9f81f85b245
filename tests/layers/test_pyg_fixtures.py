"""MemPooling and EquilibriumAggregation against torch-geometric's numbers, without torch-geometric:
outputs AND gradients stored by ``scripts/make_fixtures.py --only pyg`` (see its docstring for the
file format) are recomputed by distgnn with the same weights and inputs."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from distgnn.layers import EquilibriumAggregation, MemPooling

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pyg"
FILES = sorted(FIXTURES.glob("*.pt"))

# MemPooling: the same float64 formula (PyG's cdist rounds differently; its gradient too).
# EquilibriumAggregation: PyG starts y in float32, so the first step's gradient carries float32
# rounding (~1e-8 relative) into the float64 outputs, amplified to a few 1e-6 of a tensor's largest
# entry in the parameter gradients. The fixtures also hold PyG's run with y started in float64
# (``*_float64_start``, the only change), which distgnn matches to rounding.
TOL = {"mempool": dict(rtol=1e-10, atol=1e-12), "equilibrium": dict(rtol=1e-5, scale=1e-5),
       "equilibrium_float64_start": dict(rtol=1e-10, scale=1e-12)}


def _load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def test_the_fixtures_are_there_and_small():
    names = {p.stem for p in FILES}
    assert sum(n.startswith("mempool-") for n in names) >= 5, "run scripts/make_fixtures.py --only pyg"
    assert sum(n.startswith("equilibrium-") for n in names) >= 4, "run scripts/make_fixtures.py --only pyg"
    assert sum(p.stat().st_size for p in FILES) < 500 * 1024


def _check(got: dict, want: dict, tol: dict, what: str) -> None:
    """``got == want`` key by key; ``scale`` sets ``atol`` to ``scale * max|want|`` per tensor."""
    assert set(got) == set(want), what
    for key in want:
        t = dict(tol)
        if "scale" in t:
            t["atol"] = t.pop("scale") * max(float(want[key].abs().max()), 1e-30) if want[key].numel() else 0.0
        torch.testing.assert_close(got[key], want[key], **t, msg=lambda m, k=key: f"{what} {k}: {m}")


@pytest.mark.parametrize("path", [p for p in FILES if p.stem.startswith("mempool-")], ids=lambda p: p.stem)
def test_mempool_matches_torch_geometric(path):
    fx = _load(path)
    cfg, inp = fx["config"], fx["inputs"]
    m = MemPooling(cfg["in_channels"], cfg["out_channels"], cfg["heads"], cfg["num_clusters"], cfg["tau"]).double()
    m.load_state_dict(fx["state"])
    x = inp["x"].clone().requires_grad_()
    if "batch" in inp:
        out, s = m(x, inp["batch"], max_num_nodes=cfg["max_num_nodes"])
    else:
        out, s = m(x, mask=inp["mask"])
    kl = MemPooling.kl_loss(s)
    _check({"out": out, "s": s, "kl": kl}, fx["outputs"], TOL["mempool"], path.stem)
    ((out * inp["w_out"]).sum() + (s * inp["w_s"]).sum() + kl).backward()
    grads = {"x": x.grad, **{n: p.grad for n, p in m.named_parameters()}}
    _check(grads, fx["grads"], TOL["mempool"], path.stem)


@pytest.mark.parametrize("path", [p for p in FILES if p.stem.startswith("equilibrium-")], ids=lambda p: p.stem)
def test_equilibrium_matches_torch_geometric(path):
    fx = _load(path)
    cfg, inp = fx["config"], fx["inputs"]
    m = EquilibriumAggregation(cfg["in_channels"], cfg["out_channels"], cfg["num_layers"],
                               grad_iter=cfg["grad_iter"], lamb=cfg["lamb"]).double()
    m.load_state_dict(fx["state"])
    x = inp["x"].clone().requires_grad_()
    out = m(x, inp["index"], dim_size=cfg["dim_size"])
    params = dict(m.named_parameters())
    got = torch.autograd.grad((out * inp["w_out"]).sum(), [x] + list(params.values()),
                              allow_unused=True, materialize_grads=True)
    grads = dict(zip(["x"] + list(params), got))
    _check({"out": out}, fx["outputs"], TOL["equilibrium"], path.stem)
    _check(grads, fx["grads"], TOL["equilibrium"], path.stem)
    _check({"out": out}, fx["outputs_float64_start"], TOL["equilibrium_float64_start"], path.stem + " (float64 start)")
    _check(grads, fx["grads_float64_start"], TOL["equilibrium_float64_start"], path.stem + " (float64 start)")
