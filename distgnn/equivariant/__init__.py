"""E(3)-equivariant layers on irreps features ``[..., N, P, (L+1)^2, F]``: a PyTorch port of
e3x 1.0.2's message passing (``MessagePass``, ``Dense``, ``Tensor``, ``FusedTensor``, ``basis``,
the radial functions and cutoffs, real spherical harmonics and Clebsch-Gordan coefficients).

``MessagePass`` accepts e3x's dense and sparse neighbour lists and, with ``graph=``, a distgnn
graph: on a partitioned graph the neighbours' features and positions cross the cut through the
graph contract, so outputs, forces and their gradients equal the whole-graph ones.
"""
from . import radial, so3
from .dense import Dense, FusedTensor, Tensor
from .indices import dense_pairwise_indices, dense_to_sparse_indices, sparse_pairwise_indices, sparse_to_dense_indices
from .message_pass import MessagePass, basis, edge_vectors
from .radial import (
    basic_bernstein,
    basic_chebyshev,
    basic_fourier,
    basic_gaussian,
    cosine_cutoff,
    exponential_bernstein,
    exponential_chebyshev,
    exponential_fourier,
    exponential_gaussian,
    exponential_mapping,
    reciprocal_bernstein,
    reciprocal_chebyshev,
    reciprocal_fourier,
    reciprocal_gaussian,
    reciprocal_mapping,
    rectangular_window,
    sinc,
    smooth_cutoff,
    smooth_damping,
    smooth_switch,
    smooth_window,
    triangular_window,
)
from .so3 import clebsch_gordan, solid_harmonics, spherical_harmonics

__all__ = [
    "Dense",
    "FusedTensor",
    "MessagePass",
    "Tensor",
    "basic_bernstein",
    "basic_chebyshev",
    "basic_fourier",
    "basic_gaussian",
    "basis",
    "clebsch_gordan",
    "cosine_cutoff",
    "dense_pairwise_indices",
    "dense_to_sparse_indices",
    "edge_vectors",
    "exponential_bernstein",
    "exponential_chebyshev",
    "exponential_fourier",
    "exponential_gaussian",
    "exponential_mapping",
    "radial",
    "reciprocal_bernstein",
    "reciprocal_chebyshev",
    "reciprocal_fourier",
    "reciprocal_gaussian",
    "reciprocal_mapping",
    "rectangular_window",
    "sinc",
    "smooth_cutoff",
    "smooth_damping",
    "smooth_switch",
    "smooth_window",
    "so3",
    "solid_harmonics",
    "sparse_pairwise_indices",
    "sparse_to_dense_indices",
    "spherical_harmonics",
    "triangular_window",
]
