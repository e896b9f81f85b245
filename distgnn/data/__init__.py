"""Datasets: the :class:`GraphData` contract, loaders (Planetoid, OGB, Parquet/CSV, NumPy) and generators.

pyarrow is imported only when a table is read, so importing this package stays light.
"""
from .dataset import DataError, GraphData
from .ogb import load_ogb
from .planetoid import default_data_dir, load_planetoid
from .synthetic import products, rmat, sbm
from .tables import load_edge_list, load_numpy, save_numpy
from .transforms import TRANSFORMS, apply_transform, default_transform, load_dataset

__all__ = [
    "GraphData",
    "DataError",
    "load_planetoid",
    "load_ogb",
    "load_edge_list",
    "load_numpy",
    "save_numpy",
    "sbm",
    "rmat",
    "products",
    "default_data_dir",
    "TRANSFORMS",
    "apply_transform",
    "default_transform",
    "load_dataset",
]
