"""Equivariant linear layers and channel-wise tensor products (ports of e3x 1.0.2's ``Dense``,
``Tensor`` and ``FusedTensor``) on features ``[..., P, (L+1)^2, F]`` (see :mod:`.so3`).

Both tensor products are bilinear maps ``z = x1 (x) x2`` that couple feature ``f`` of the first
input only with feature ``f`` of the second. Each is represented here by its *coupling tensor*
``T [A, B, C, F]`` (``A = P1 (L1+1)^2``, ``B = P2 (L2+1)^2``, ``C = P3 (L3+1)^2``)::

    z[..., c, f] = sum_{a, b} x1[..., a, f] x2[..., b, f] T[a, b, c, f]

built from the learnable weights at every call (:meth:`Tensor.coupling`,
:meth:`FusedTensor.coupling`). ``MessagePass`` uses the same tensor to contract neighbourhood
sums of outer products, so one product is computed per node instead of per edge.

Sizes are inferred at the first call (then create the optimiser), or given up front with the
``in_*`` keywords; a state dict fills uninitialised parameters with its shapes when loaded.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor as TorchTensor
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedParameter

from . import so3
from .so3 import IrrepsError, check_irreps, degree_of_index

__all__ = ["Dense", "FusedTensor", "Tensor", "output_layout", "parity_mask"]

_TRUNC_STD = 0.87962566103423978  # std of a standard normal truncated to (-2, 2)


def _truncated_normal_(t: TorchTensor, variance) -> TorchTensor:
    """In place: mean 0, ``variance`` (a float or a tensor broadcastable to ``t``), normal
    truncated at two standard deviations (e3x's and Keras' ``truncated_normal``)."""
    with torch.no_grad():
        nn.init.trunc_normal_(t, 0.0, 1.0, -2.0, 2.0)
        t.mul_(torch.as_tensor(variance, dtype=t.dtype).sqrt() / _TRUNC_STD)
    return t


def _parity_list(num_parity: int, max_degree: int) -> list[tuple[int, int, int]]:
    """``(p, l, d)``: parity channel, degree, parity (0 even / 1 odd) of every irrep."""
    if num_parity == 2:
        return [(0, l, 0) for l in range(max_degree + 1)] + [(1, l, 1) for l in range(max_degree + 1)]
    return [(0, l, l % 2) for l in range(max_degree + 1)]


@lru_cache(maxsize=None)
def _parity_mask(p1: int, l1: int, p2: int, l2: int, p3: int, l3: int, triangle: bool) -> tuple:
    mask = torch.ones(p1, l1 + 1, p2, l2 + 1, p3, l3 + 1, dtype=torch.float64)
    triples = ((a, b, c) for a in _parity_list(p1, l1) for b in _parity_list(p2, l2) for c in _parity_list(p3, l3))
    for a, b, c in triples:
        forbidden = (a[2] + b[2]) % 2 != c[2] or (triangle and not abs(a[1] - b[1]) <= c[1] <= a[1] + b[1])
        if forbidden:
            mask[a[0], a[1], b[0], b[1], c[0], c[1]] = 0
    return (mask,)


def parity_mask(p1: int, l1: int, p2: int, l2: int, p3: int, l3: int, triangle: bool = False) -> TorchTensor:
    """``[P1, L1+1, P2, L2+1, P3, L3+1]``: 1 for every coupling path that conserves parity (and,
    with ``triangle``, satisfies ``|l1 - l2| <= l3 <= l1 + l2``), else 0."""
    return _parity_mask(p1, l1, p2, l2, p3, l3, triangle)[0]


def output_layout(
    owner: str, p1: int, l1: int, p2: int, l2: int, max_degree: int | None, include_pseudotensors: bool
) -> tuple[int, int]:
    """``(P3, L3)`` of a tensor product (e3x's rules): ``L3 = max_degree`` or ``max(L1, L2)``,
    at most ``L1 + L2``; two inputs without pseudotensors where one input or the output has
    degree 0 cannot produce pseudotensors, so ``P3 = 1`` then whatever ``include_pseudotensors``."""
    l3 = max(l1, l2) if max_degree is None else max_degree
    if l3 > l1 + l2:
        raise IrrepsError(
            f"{owner}: the product of inputs with max degrees {l1} and {l2} has degree at most {l1 + l2}, "
            f"got max_degree={l3}; lower max_degree"
        )
    include = include_pseudotensors and not (p1 == p2 == 1 and 0 in (l1, l2, l3))
    return (2 if include else 1), l3


def _check_degree_arg(owner: str, max_degree) -> None:
    if max_degree is not None and (isinstance(max_degree, bool) or not isinstance(max_degree, int) or max_degree < 0):
        raise IrrepsError(f"{owner}: max_degree must be None or an int >= 0, got {max_degree!r}")


def _check_sizes(owner: str, **sizes) -> None:
    for name, v in sizes.items():
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int):
            raise IrrepsError(f"{owner}: {name} must be an int, got {v!r}")
        if name.startswith("in_parity") and v not in (1, 2):
            raise IrrepsError(f"{owner}: {name} must be 1 or 2, got {v}")
        if name.startswith("in_max_degree") and v < 0:
            raise IrrepsError(f"{owner}: {name} must be >= 0, got {v}")
        if name in ("in_features", "features") and v < 1:
            raise IrrepsError(f"{owner}: {name} must be >= 1, got {v}")


def _expand_degrees(t: TorchTensor, dims: tuple[int, ...], degrees: tuple[int, ...]) -> TorchTensor:
    """Repeat each degree entry ``2l+1`` times along ``dims`` (degree axes -> component axes)."""
    for dim, L in zip(dims, degrees):
        idx = torch.tensor(degree_of_index(L), device=t.device)
        t = t.index_select(dim, idx)
    return t


def apply_coupling(x1: TorchTensor, x2: TorchTensor, coupling: TorchTensor, p3: int) -> TorchTensor:
    """``z[..., c, f] = sum_ab x1[..., a, f] x2[..., b, f] T[a, b, c, f]``.

    Shapes: ``x1 [..., P1, D1, F]``, ``x2 [..., P2, D2, F]``, ``T [P1 D1, P2 D2, P3 D3, F]``
    -> ``[..., P3, D3, F]``.
    """
    lead = torch.broadcast_shapes(x1.shape[:-3], x2.shape[:-3])
    f = x1.shape[-1]
    a, b, c = coupling.shape[:3]
    x1f = x1.expand(*lead, *x1.shape[-3:]).reshape(-1, a, f)  # (n, A, F)
    x2f = x2.expand(*lead, *x2.shape[-3:]).reshape(-1, b, f)  # (n, B, F)
    outer = (x1f.unsqueeze(2) * x2f.unsqueeze(1)).reshape(-1, a * b, f)  # (n, AB, F)
    z = torch.einsum("nkf,kcf->ncf", outer, coupling.reshape(a * b, c, f))  # (n, C, F)
    return z.reshape(*lead, p3, c // p3, f)  # (..., P3, D3, F)


# ------------------------------------------------------------------------------------------------
class Dense(LazyModuleMixin, nn.Module):
    r"""Equivariant linear layer over the feature axis (e3x ``Dense``).

    ``y^(l,p) = x^(l,p) W_(l,p) (+ b for the even scalar channel 0+ only)``: every degree ``l``
    and parity ``p`` has its own ``[F_in, F_out]`` matrix; the bias only touches ``l = 0`` of
    the even channel (adding a constant to any other irrep would break equivariance).

    Args:
        features: ``F_out`` (``None``: fixed later by the owning layer through :meth:`materialize`).
        use_bias: add ``b`` to the even scalar channel (default True).
        in_features, in_parity, in_max_degree: input sizes; inferred at the first call when not
            all given.

    Parameters: ``kernel [P, L+1, F_in, F_out]`` (lecun-normal per matrix), ``bias [F_out]`` (zeros);
    cast to the dtype of the input at every call (as e3x's ``promote_dtype``).

    Shapes: ``x [..., P, (L+1)^2, F_in] -> [..., P, (L+1)^2, F_out]``.
    """

    cls_to_become = None

    def __init__(
        self,
        features: int | None,
        use_bias: bool = True,
        *,
        in_features: int | None = None,
        in_parity: int | None = None,
        in_max_degree: int | None = None,
    ):
        super().__init__()
        _check_sizes("Dense", features=features, in_features=in_features, in_parity=in_parity,
                     in_max_degree=in_max_degree)
        self.features = features
        self.use_bias = bool(use_bias)
        self.kernel = UninitializedParameter()
        self.bias = UninitializedParameter() if use_bias else None
        if None not in (features, in_features, in_parity, in_max_degree):
            self.materialize(in_parity, in_max_degree, in_features)

    def materialize(self, in_parity: int, in_max_degree: int, in_features: int, features: int | None = None) -> None:
        """Create the parameters for inputs ``[..., in_parity, (in_max_degree+1)^2, in_features]``."""
        if features is not None:
            if self.features is not None and self.features != features:
                raise IrrepsError(f"Dense: built for {self.features} output features, asked for {features}")
            self.features = features
        if self.features is None:
            raise IrrepsError("Dense: the number of output features is unknown; pass features")
        shape = (in_parity, in_max_degree + 1, in_features, self.features)
        if not self.has_uninitialized_params():
            if tuple(self.kernel.shape) != shape:
                raise IrrepsError(
                    f"Dense: built for inputs [.., {self.kernel.shape[0]}, {self.kernel.shape[1] ** 2}, "
                    f"{self.kernel.shape[2]}], got [.., {in_parity}, {(in_max_degree + 1) ** 2}, {in_features}]"
                )
            return
        with torch.no_grad():
            self.kernel.materialize(shape)
            if self.bias is not None:
                self.bias.materialize((self.features,))
        self.reset_parameters()

    def initialize_parameters(self, x: TorchTensor) -> None:  # LazyModuleMixin hook
        p, L, f = check_irreps(x.shape, "Dense: inputs")
        self.materialize(p, L, f)

    def reset_parameters(self) -> None:
        if self.has_uninitialized_params():
            return
        _truncated_normal_(self.kernel, 1.0 / self.kernel.shape[2])  # lecun normal for every matrix
        if self.bias is not None:
            with torch.no_grad():
                self.bias.zero_()

    def forward(self, x: TorchTensor) -> TorchTensor:
        p, L, f = check_irreps(x.shape, "Dense: inputs")
        if (p, L + 1, f) != tuple(self.kernel.shape[:3]):
            raise IrrepsError(
                f"Dense: built for inputs [.., {self.kernel.shape[0]}, {self.kernel.shape[1] ** 2}, "
                f"{self.kernel.shape[2]}], got {tuple(x.shape)}"
            )
        w = _expand_degrees(self.kernel.to(x.dtype), (1,), (L,))  # (P, D, F_in, F_out)
        y = torch.einsum("...pci,pcio->...pco", x, w)  # (..., P, D, F_out)
        if self.bias is not None:
            onehot = torch.zeros(p, (L + 1) ** 2, 1, dtype=y.dtype, device=y.device)
            onehot[0, 0, 0] = 1
            y = y + onehot * self.bias.to(y.dtype)  # (..., P, D, F_out), bias on 0+ only
        return y

    def extra_repr(self) -> str:
        shape = None if self.has_uninitialized_params() else tuple(self.kernel.shape)
        return f"features={self.features}, use_bias={self.use_bias}, kernel={shape}"


# ------------------------------------------------------------------------------------------------
class _Product(LazyModuleMixin, nn.Module):
    """Shared parts of :class:`Tensor` and :class:`FusedTensor`."""

    cls_to_become = None
    _name = "_Product"

    def __init__(self, max_degree, include_pseudotensors, cartesian_order, in_features, in_parity1, in_max_degree1,
                 in_parity2, in_max_degree2):
        super().__init__()
        self._declare_parameters()
        _check_degree_arg(self._name, max_degree)
        _check_sizes(self._name, in_features=in_features, in_parity1=in_parity1, in_max_degree1=in_max_degree1,
                     in_parity2=in_parity2, in_max_degree2=in_max_degree2)
        self.max_degree = max_degree
        self.include_pseudotensors = bool(include_pseudotensors)
        self.cartesian_order = bool(cartesian_order)
        self._layout: tuple | None = None  # (P1, L1, P2, L2, P3, L3, F), fixed at materialisation
        sizes = (in_parity1, in_max_degree1, in_parity2, in_max_degree2, in_features)
        if None not in sizes:
            self.materialize(*sizes)

    @property
    def layout(self) -> tuple | None:
        """``(P1, L1, P2, L2, P3, L3, F)`` once the sizes are known, else ``None``."""
        return self._layout

    def materialize(self, p1: int, l1: int, p2: int, l2: int, features: int) -> tuple:
        """Create the parameters for inputs ``[.., p1, (l1+1)^2, F]`` and ``[.., p2, (l2+1)^2, F]``;
        returns the layout ``(P1, L1, P2, L2, P3, L3, F)``."""
        p3, l3 = output_layout(self._name, p1, l1, p2, l2, self.max_degree, self.include_pseudotensors)
        layout = (p1, l1, p2, l2, p3, l3, features)
        if self._layout is not None or not self.has_uninitialized_params():
            known = self._layout or self._layout_from_params(p1, l1, p2, l2)
            if known != layout:
                raise IrrepsError(
                    f"{self._name}: built for inputs (P, L, F) = {known[0:2] + known[6:7]} and "
                    f"{known[2:4] + known[6:7]}, "
                    f"got {(p1, l1, features)} and {(p2, l2, features)}"
                )
            self._layout = layout
            return layout
        self._layout = layout
        with torch.no_grad():
            for name, shape in self._param_shapes(layout).items():
                getattr(self, name).materialize(shape)
        self.reset_parameters()
        return layout

    def initialize_parameters(self, x1: TorchTensor, x2: TorchTensor) -> None:  # LazyModuleMixin hook
        self.materialize(*self._shapes(x1, x2))

    def _shapes(self, x1: TorchTensor, x2: TorchTensor) -> tuple[int, int, int, int, int]:
        p1, l1, f1 = check_irreps(x1.shape, f"{self._name}: inputs1")
        p2, l2, f2 = check_irreps(x2.shape, f"{self._name}: inputs2")
        if f1 != f2:
            raise IrrepsError(
                f"{self._name}: inputs1 and inputs2 must have the same number of features (axis -1), "
                f"got shapes {tuple(x1.shape)} and {tuple(x2.shape)}"
            )
        return p1, l1, p2, l2, f1

    def forward(self, x1: TorchTensor, x2: TorchTensor) -> TorchTensor:
        """``x1 [..., P1, (L1+1)^2, F], x2 [..., P2, (L2+1)^2, F] -> [..., P3, (L3+1)^2, F]``."""
        layout = self.materialize(*self._shapes(x1, x2))
        dt = torch.promote_types(x1.dtype, x2.dtype)
        t = self.coupling(dtype=dt)  # (A, B, C, F)
        return apply_coupling(x1.to(dt), x2.to(dt), t.to(x1.device), layout[4])

    def extra_repr(self) -> str:
        return (f"max_degree={self.max_degree}, include_pseudotensors={self.include_pseudotensors}, "
                f"cartesian_order={self.cartesian_order}, layout={self._layout}")

    # state dicts: a loaded module knows its layout from the parameter shapes
    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._layout = None


class Tensor(_Product):
    r"""Channel-wise tensor product with one weight per coupling path and feature (e3x ``Tensor``).

    .. math::
        z^{(l_3, p_3)}_f = \sum_{(l_1 p_1, l_2 p_2)} w_{(l_1 p_1, l_2 p_2, l_3 p_3), f}
            \sum_{m_1 m_2} C^{l_3 m_3}_{l_1 m_1 l_2 m_2} x1^{(l_1 p_1)}_{m_1 f} x2^{(l_2 p_2)}_{m_2 f}

    over every path with ``|l1 - l2| <= l3 <= l1 + l2`` that conserves parity
    (``p3 = p1 p2``); ``C`` are the real Clebsch-Gordan coefficients of :mod:`.so3`. With
    ``include_pseudotensors=False`` the output keeps one parity channel (``P3 = 1``) and every
    path producing a pseudotensor is dropped.

    Args:
        max_degree: ``L3`` (default ``max(L1, L2)``; at most ``L1 + L2``).
        include_pseudotensors: keep both parity channels in the output (default True).
        cartesian_order: order of the components (default True, as e3x).
        in_features, in_parity1, in_max_degree1, in_parity2, in_max_degree2: input sizes
            (inferred at the first call when not all given).

    Parameters: ``kernel [P1, L1+1, P2, L2+1, P3, L3+1, F]`` (e3x's layout; entries of forbidden
    paths are unused and initialised to 0; tensor-lecun-normal: variance 1 / number of paths
    into each output irrep).

    Shapes: ``x1 [..., P1, (L1+1)^2, F]``, ``x2 [..., P2, (L2+1)^2, F]`` -> ``[..., P3, (L3+1)^2, F]``.
    Leading dimensions broadcast.
    """

    _name = "Tensor"

    def __init__(
        self,
        max_degree: int | None = None,
        include_pseudotensors: bool = True,
        cartesian_order: bool = True,
        *,
        in_features: int | None = None,
        in_parity1: int | None = None,
        in_max_degree1: int | None = None,
        in_parity2: int | None = None,
        in_max_degree2: int | None = None,
    ):
        super().__init__(max_degree, include_pseudotensors, cartesian_order, in_features, in_parity1,
                         in_max_degree1, in_parity2, in_max_degree2)

    def _declare_parameters(self) -> None:
        self.kernel = UninitializedParameter()

    def _param_shapes(self, layout) -> dict:
        p1, l1, p2, l2, p3, l3, f = layout
        return {"kernel": (p1, l1 + 1, p2, l2 + 1, p3, l3 + 1, f)}

    def _layout_from_params(self, p1, l1, p2, l2) -> tuple:
        s = tuple(self.kernel.shape)
        return (s[0], s[1] - 1, s[2], s[3] - 1, s[4], s[5] - 1, s[6])

    def reset_parameters(self) -> None:
        if self.has_uninitialized_params():
            return
        p1, l1, p2, l2, p3, l3, _ = self._layout_from_params(0, 0, 0, 0)
        mask = parity_mask(p1, l1, p2, l2, p3, l3, triangle=True)
        fan_in = mask.sum(dim=(0, 1, 2, 3)).clamp(min=1)  # (P3, L3+1): paths into each output irrep
        var = (1.0 / fan_in)[None, None, None, None, :, :, None].to(self.kernel.dtype)
        with torch.no_grad():
            _truncated_normal_(self.kernel, var)
            self.kernel.mul_(mask[..., None].to(self.kernel.dtype))

    def coupling(self, dtype: torch.dtype | None = None) -> TorchTensor:
        """``T [P1 D1, P2 D2, P3 D3, F]`` (see the module docstring), differentiable in ``kernel``."""
        p1, l1, p2, l2, p3, l3, f = self._layout_from_params(0, 0, 0, 0)
        k = self.kernel if dtype is None else self.kernel.to(dtype)
        mask = parity_mask(p1, l1, p2, l2, p3, l3).to(dtype=k.dtype, device=k.device)
        k = k * mask[..., None]  # (P1, L1+1, P2, L2+1, P3, L3+1, F): forbidden paths removed
        k = _expand_degrees(k, (1, 3, 5), (l1, l2, l3))  # (P1, D1, P2, D2, P3, D3, F)
        cg = so3.clebsch_gordan(l1, l2, l3, self.cartesian_order, dtype=k.dtype, device=k.device)
        t = k * cg[None, :, None, :, None, :, None]  # (P1, D1, P2, D2, P3, D3, F)
        d1, d2, d3 = cg.shape
        return t.reshape(p1 * d1, p2 * d2, p3 * d3, f)


class FusedTensor(_Product):
    r"""Fused channel-wise tensor product (e3x ``FusedTensor``): cheaper, fewer weights.

    Irreps of each input are weighted per degree and parity and mapped to
    ``(2l~+1) x (2l~+1)`` matrices (``l~ = ceil(max(L1, L2, L3) / 2)``) with the Clebsch-Gordan
    coefficients ``C^{l m}_{l~ m~, l~ m~'}``: ``X^(+) = sum_a w_{x,a+} C x^(a+)`` (likewise
    ``X^(-)``, ``Y^(+)``, ``Y^(-)``); the matrices are multiplied (``X^(+) Y^(+)``,
    ``X^(-) Y^(-)`` even; ``X^(+) Y^(-)``, ``X^(-) Y^(+)`` odd) and projected back to irreps with
    weights per output degree (``kernel_eee``, ``kernel_ooe``, ``kernel_eoo``, ``kernel_oeo``);
    same parities are summed. With ``include_pseudotensors=False`` the output keeps one channel
    (even degrees from the even part, odd degrees from the odd part).

    Args: as :class:`Tensor`.

    Parameters: ``kernel_e1, kernel_o1 [L1+1, F]``, ``kernel_e2, kernel_o2 [L2+1, F]``,
    ``kernel_eee, kernel_ooe, kernel_eoo, kernel_oeo [L3+1, F]`` (e3x's names and shapes and
    its variance-scaled truncated-normal initialisation, unused entries 0).

    Shapes: as :class:`Tensor`.
    """

    _name = "FusedTensor"
    _KERNELS = ("kernel_e1", "kernel_o1", "kernel_e2", "kernel_o2",
                "kernel_eee", "kernel_ooe", "kernel_eoo", "kernel_oeo")

    def __init__(
        self,
        max_degree: int | None = None,
        include_pseudotensors: bool = True,
        cartesian_order: bool = True,
        *,
        in_features: int | None = None,
        in_parity1: int | None = None,
        in_max_degree1: int | None = None,
        in_parity2: int | None = None,
        in_max_degree2: int | None = None,
    ):
        super().__init__(max_degree, include_pseudotensors, cartesian_order, in_features, in_parity1,
                         in_max_degree1, in_parity2, in_max_degree2)

    def _declare_parameters(self) -> None:
        for name in self._KERNELS:
            setattr(self, name, UninitializedParameter())

    def _param_shapes(self, layout) -> dict:
        p1, l1, p2, l2, p3, l3, f = layout
        sizes = (l1, l1, l2, l2, l3, l3, l3, l3)
        return {name: (s + 1, f) for name, s in zip(self._KERNELS, sizes)}

    def _layout_from_params(self, p1, l1, p2, l2) -> tuple:
        # the kernels do not record the parity axes: take them from the call (or the layout)
        if self._layout is not None:
            return self._layout
        l3 = self.kernel_eee.shape[0] - 1
        p3, _ = output_layout(self._name, p1, self.kernel_e1.shape[0] - 1, p2, self.kernel_e2.shape[0] - 1,
                              l3, self.include_pseudotensors)
        return (p1, self.kernel_e1.shape[0] - 1, p2, self.kernel_e2.shape[0] - 1, p3, l3, self.kernel_eee.shape[1])

    def reset_parameters(self) -> None:
        if self.has_uninitialized_params() or self._layout is None:
            return
        p1, l1, p2, l2, p3, l3, f = self._layout
        lt = math.ceil(max(l1, l2, l3) / 2)
        n = 2 * lt + 1
        var_in = (1.0 / math.sqrt(n)) * n / min(l1 + 1, l2 + 1)
        even = lambda L: torch.tensor([1.0 - l % 2 for l in range(L + 1)])[:, None]  # noqa: E731
        odd = lambda L: torch.tensor([float(l % 2) for l in range(L + 1)])[:, None]  # noqa: E731
        if p1 == p2 == 2:
            var_out = torch.full((l3 + 1, 1), 0.5)
        elif p1 == p2 == 1 and l1 > 0 and l2 > 0:
            var_out = torch.full((l3 + 1, 1), 2.0)
            var_out[0] = 1.0
        else:
            var_out = torch.ones(l3 + 1, 1)
        ones3 = torch.ones(l3 + 1, 1)
        mask_o3 = ones3.clone()
        if p1 == p2 == 1:
            mask_o3[0] = 0.0
        specs = {
            "kernel_e1": (var_in, torch.ones(l1 + 1, 1) if p1 == 2 else even(l1)),
            "kernel_o1": (var_in, torch.ones(l1 + 1, 1) if p1 == 2 else odd(l1)),
            "kernel_e2": (var_in, torch.ones(l2 + 1, 1) if p2 == 2 else even(l2)),
            "kernel_o2": (var_in, torch.ones(l2 + 1, 1) if p2 == 2 else odd(l2)),
            "kernel_eee": (var_out, ones3),
            "kernel_ooe": (var_out, ones3),
            "kernel_eoo": (var_out, mask_o3),
            "kernel_oeo": (var_out, mask_o3),
        }
        with torch.no_grad():
            for name, (var, mask) in specs.items():
                p = getattr(self, name)
                _truncated_normal_(p, var)
                p.mul_(mask.to(p.dtype))

    def coupling(self, dtype: torch.dtype | None = None) -> TorchTensor:
        """``T [P1 D1, P2 D2, P3 D3, F]``: the fused product of every pair of unit inputs."""
        if self._layout is None:
            raise IrrepsError("FusedTensor: call the layer (or materialize) once before asking for its coupling tensor")
        p1, l1, p2, l2, p3, l3, f = self._layout
        k = {name: getattr(self, name) if dtype is None else getattr(self, name).to(dtype) for name in self._KERNELS}
        dt, dev = k["kernel_e1"].dtype, k["kernel_e1"].device
        a, b = p1 * (l1 + 1) ** 2, p2 * (l2 + 1) ** 2
        x1 = torch.eye(a, dtype=dt, device=dev).reshape(a, 1, p1, (l1 + 1) ** 2, 1)  # (A, 1, P1, D1, 1)
        x2 = torch.eye(b, dtype=dt, device=dev).reshape(1, b, p2, (l2 + 1) ** 2, 1)  # (1, B, P2, D2, 1)
        z = _fused_product(x1, x2, k, (p1, l1, p2, l2, p3, l3), self.cartesian_order)  # (A, B, P3, D3, F)
        return z.reshape(a, b, p3 * (l3 + 1) ** 2, f)


def _even_odd(x: TorchTensor, p: int, L: int) -> tuple[TorchTensor, TorchTensor]:
    """Even and odd parts ``[..., D, F]`` of features ``[..., P, D, F]``."""
    if p == 2:
        return x[..., 0, :, :], x[..., 1, :, :]
    odd = torch.tensor([float(l % 2) for l in degree_of_index(L)], dtype=x.dtype, device=x.device)[:, None]
    x = x[..., 0, :, :]
    return x * (1 - odd), x * odd


def _fused_product(x1, x2, k: dict, layout: tuple, cartesian_order: bool) -> TorchTensor:
    """The fused bilinear map on (broadcastable) features; see :class:`FusedTensor`."""
    p1, l1, p2, l2, p3, l3 = layout
    lmax = max(l1, l2, l3)
    lt = math.ceil(lmax / 2)
    cg = so3.clebsch_gordan(lt, lt, lmax, cartesian_order, dtype=x1.dtype, device=x1.device)
    cg = cg[lt * lt :, lt * lt :, :]  # (n, n, (lmax+1)^2), n = 2 lt + 1
    e1, o1 = _even_odd(x1, p1, l1)
    e2, o2 = _even_odd(x2, p2, l2)

    def to_matrix(x, kernel, L):
        w = _expand_degrees(kernel, (0,), (L,))  # (D, F)
        return torch.einsum("...af,kma->...kmf", x * w, cg[:, :, : (L + 1) ** 2])  # (..., n, n, F)

    def to_vector(m, kernel):
        w = _expand_degrees(kernel, (0,), (l3,))  # (D3, F)
        return torch.einsum("...kmf,kmc->...cf", m, cg[:, :, : (l3 + 1) ** 2]) * w  # (..., D3, F)

    def matmul(a, b):
        return torch.einsum("...kmf,...mnf->...knf", a, b)  # (..., n, n, F)

    me1, mo1 = to_matrix(e1, k["kernel_e1"], l1), to_matrix(o1, k["kernel_o1"], l1)
    me2, mo2 = to_matrix(e2, k["kernel_e2"], l2), to_matrix(o2, k["kernel_o2"], l2)
    even = to_vector(matmul(me1, me2), k["kernel_eee"]) + to_vector(matmul(mo1, mo2), k["kernel_ooe"])
    odd = to_vector(matmul(me1, mo2), k["kernel_eoo"]) + to_vector(matmul(mo1, me2), k["kernel_oeo"])
    if p3 == 2:
        return torch.stack([even, odd], dim=-3)  # (..., 2, D3, F)
    odd_deg = torch.tensor([float(l % 2) for l in degree_of_index(l3)], dtype=even.dtype, device=even.device)[:, None]
    return (even * (1 - odd_deg) + odd * odd_deg).unsqueeze(-3)  # (..., 1, D3, F)
