"""The ogbn-products twin (distgnn.data.synthetic.products) and the degree-corrected sbm, at tiny scale."""
from __future__ import annotations

import pytest
import torch

from distgnn.data import DataError, load_dataset, products, sbm
from distgnn.data.synthetic import PRODUCTS, synthetic
from distgnn.partition.inputs import open_input


@pytest.fixture(scope="module")
def twin():
    return products(0.004, seed=3)  # 9,796 nodes, ~247k directed edges


def test_products_sizes_scale_with_ogbn_products(twin):
    n = round(PRODUCTS["num_nodes"] * 0.004)
    assert twin.num_nodes == n == 9796 and twin.num_features == 100 and twin.num_classes == 47
    target = round(PRODUCTS["num_edges"] * 0.004)
    assert abs(twin.num_edges - target) <= 0.002 * target
    train = int(twin.train_mask.sum())
    assert 0.075 <= train / n <= 0.085  # ogbn-products: 8.0%
    assert abs(int(twin.val_mask.sum()) - round(PRODUCTS["num_val"] * 0.004)) <= 1
    assert not bool((twin.train_mask & twin.val_mask).any() | (twin.train_mask & twin.test_mask).any())
    assert twin.x.dtype == torch.float32 and twin.name == "products-x0.004"


def test_products_edges_are_simple_symmetric_and_sorted(twin):
    src, dst = twin.edge_index
    n = twin.num_nodes
    key = src * n + dst
    assert bool((src != dst).all())
    assert bool((key[1:] > key[:-1]).all())  # sorted and distinct
    assert torch.equal(torch.sort(dst * n + src).values, key)  # every reverse edge present


def test_products_degrees_follow_a_power_law_and_classes_cluster(twin):
    deg = torch.bincount(twin.edge_index[1], minlength=twin.num_nodes).double()
    assert int(deg.min()) >= 1
    assert deg.max() > 10 * deg.median()  # hubs: a Poisson graph's max is ~2x its median
    # tail of the complementary CDF: P(deg >= d) ~ d^(1 - 2.5) between d = 2 and 8 medians
    med = float(deg.median())
    ratio = float((deg >= 8 * med).double().mean() / (deg >= 2 * med).double().mean())
    assert 4.0 ** -2.0 < ratio < 4.0 ** -1.0  # slope -1.5 gives 4^-1.5
    same = (twin.y[twin.edge_index[0]] == twin.y[twin.edge_index[1]]).double().mean()
    assert 0.6 < float(same) < 0.85  # homophily 0.8, a little lower once hub pairs are deduplicated


def test_products_is_deterministic_per_seed(twin):
    again = products(0.004, seed=3)
    assert torch.equal(again.edge_index, twin.edge_index) and torch.equal(again.x, twin.x)
    assert not torch.equal(products(0.004, seed=4).edge_index, twin.edge_index)


def test_products_specs_for_train_and_partition():
    data = load_dataset("synthetic:products,scale=0.001")
    assert data.num_nodes == 2449 and data.transforms == ()
    assert torch.equal(open_input("synthetic:products,scale=0.001").edge_index, data.edge_index)
    assert open_input("synthetic:500").num_nodes == 500


def test_degree_corrected_sbm_keeps_uniform_sbm_unchanged():
    plain = sbm(num_nodes=300, seed=1)
    assert torch.equal(sbm(num_nodes=300, seed=1, degree_exponent=None).edge_index, plain.edge_index)
    heavy = sbm(num_nodes=3000, avg_degree=20, seed=1, degree_exponent=2.2)
    uniform = sbm(num_nodes=3000, avg_degree=20, seed=1)
    assert torch.bincount(heavy.edge_index[1]).max() > 3 * torch.bincount(uniform.edge_index[1]).max()


@pytest.mark.parametrize("call, match", [
    pytest.param(lambda: products(0), r"scale must be a number in \(0, 1000\]", id="scale-zero"),
    pytest.param(lambda: products(1e-5), "too few for 47 classes", id="scale-tiny"),
    pytest.param(lambda: sbm(num_nodes=50, degree_exponent=2.0), "degree_exponent must be > 2", id="exponent"),
    pytest.param(lambda: synthetic("products,size=2"), "products takes only scale=S", id="option"),
    pytest.param(lambda: synthetic("products,scale=big"), "scale must be a number, got 'big'", id="scale-text"),
    pytest.param(lambda: synthetic("100,scale=2"), "options are for synthetic:products only", id="n-option"),
    pytest.param(lambda: load_dataset("synthetic:lots"), "synthetic:NUM_NODES needs an integer", id="bad-n"),
])
def test_products_errors(call, match):
    with pytest.raises(DataError, match=match):
        call()
