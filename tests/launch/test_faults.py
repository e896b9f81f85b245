"""Fault injection: what a hostile user, a flaky disk or a killed process does to a run.

Every case is a named ``pytest.param``; the cases of one kind share one test function:

1. shards: a byte flipped in nodes/edges/halo of one part is refused before epoch 1, never retried;
2. checkpoints: a damaged newest checkpoint (0 bytes, truncated, bit-flipped, foreign) is skipped
   for the previous good one; none good is a one-line error; leftover temporary files are removed;
   a checkpoint of another partition is refused;
3. sockets: nothing a run starts listens anywhere but on the loopback;
4. input values: bad labels, NaN/inf features, absurd ids and shapes are one-line errors before any
   large allocation (never a MemoryError, a retry loop or ``loss nan`` with success);
5. ``--overwrite``: crash-safe at every step, leftovers cleaned, never deletes what is not a
   partition or what holds the input;
6. environment: ``RAY_ADDRESS`` joins that cluster; a SIGKILLed driver leaves no worker behind.

The Ray cases share the module's Ray session (``ray_session``) and one tiny partition.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from distgnn.data import DataError, GraphData, load_edge_list, load_planetoid, sbm
from distgnn.launch import Driver, LaunchError, RunConfig, launch
from distgnn.partition import PartitionError, load_manifest, load_part, partition, verify
from distgnn.partition.cli import main as partition_main

from tests.data.test_planetoid import _csr_pickle
from tests.partition.edit import rewrite_shard as _rewrite

from .test_driver import gone

pytestmark = pytest.mark.multiprocess

REPO = Path(__file__).resolve().parents[2]
EPOCHS = 2


# -- shared fixtures and helpers ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_parts(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("faults") / "parts"
    partition(sbm(num_nodes=400, num_classes=3, avg_degree=4, num_features=8, num_val=50, num_test=50, seed=1),
              2, out, method="metis", seed=0)
    return out


def _copy(parts: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "parts"
    shutil.copytree(parts, dst)
    return dst


def _driver(parts, echo=None, **kw) -> Driver:
    kw = {"workers": 2, "epochs": EPOCHS, "threads_per_worker": 1, "timeout_s": 60, **kw}
    return Driver(RunConfig(parts=str(parts), **kw), echo=echo)


def _refused(parts, match: str, **kw) -> Driver:
    """A launch on ``parts`` must fail with one line matching ``match``: before epoch 1, never retried."""
    epochs = []
    kw = {"workers": 2, "epochs": EPOCHS, "threads_per_worker": 1, "timeout_s": 60, **kw}
    driver = Driver(RunConfig(parts=str(parts), **kw), on_epoch=epochs.append)
    with pytest.raises(LaunchError, match=match) as info:
        driver.run()
    msg = str(info.value)
    assert "\n" not in msg and "gave up" not in msg, msg
    assert driver.attempt <= 1 and not epochs, f"retried or trained: attempt {driver.attempt}, epochs {epochs}"
    return driver


def _set_column(table, name: str, fn):
    i = table.schema.get_field_index(name)
    col = table.column(name)
    if pa.types.is_fixed_size_list(col.type):
        width = col.type.list_size
        values = fn(col.combine_chunks().flatten().to_numpy().reshape(-1, width).copy())
        array = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), width)
    else:
        array = pa.array(fn(col.to_numpy().copy()), type=col.type)
    return table.set_column(i, table.schema.field(i), array)


def _silent_flip(path: Path) -> int:
    """Flip one byte of a Parquet file so that it still reads, preferably with different values.

    Returns the offset. This is the corruption nothing but a checksum can see.
    """
    data = path.read_bytes()
    original = pq.read_table(pa.BufferReader(data))
    readable = None
    for offset in range(4, len(data) - 8):
        bad = bytearray(data)
        bad[offset] ^= 0x01
        try:
            table = pq.read_table(pa.BufferReader(bytes(bad)))
        except Exception:  # noqa: BLE001 - an unreadable flip: try the next byte
            continue
        if not table.equals(original):
            path.write_bytes(bytes(bad))
            return offset
        readable = readable if readable is not None else offset
    offset = readable if readable is not None else len(data) // 2
    bad = bytearray(data)
    bad[offset] ^= 0x01
    path.write_bytes(bytes(bad))
    return offset


# -- 1. shards are verified where they are read --------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", [
    pytest.param("nodes", id="shard-flip-nodes"),
    pytest.param("edges", id="shard-flip-edges"),
    pytest.param("halo", id="shard-flip-halo"),
])
def test_corrupt_shard_is_refused(ray_session, tiny_parts, tmp_path, name):
    parts = _copy(tiny_parts, tmp_path)
    rel = f"part-00001/{name}.parquet"
    _silent_flip(parts / rel)
    with pytest.raises(PartitionError, match=rf"^{rel}: sha256 mismatch"):
        load_part(parts, 1)
    load_part(parts, 0)  # the other part is intact
    _refused(parts, rf"loading the parts: {re.escape(rel)}: sha256 mismatch")


# -- 2. checkpoints carry their own checksum -------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoints(ray_session, tiny_parts, tmp_path_factory):
    """A finished 4-epoch run with checkpoints at epochs 2 and 4, and its parameter digests."""
    ck = tmp_path_factory.mktemp("ckpt") / "ck"
    res = launch(parts=str(tiny_parts), workers=2, epochs=4, checkpoint_every=2, checkpoint_dir=str(ck),
                 threads_per_worker=1, timeout_s=60)
    assert _listing(ck) == ["checkpoint-000002.pt", "checkpoint-000004.pt"]
    return ck, res.digests


RUN_FILES = {"epochs.jsonl", "result.json", "config.json"}  # the run directory defaults to the checkpoints'


def _listing(directory) -> list[str]:
    """The files of a checkpoint directory other than the run's figures."""
    return sorted(set(os.listdir(directory)) - RUN_FILES)


def _zero(path: Path) -> None:
    path.write_bytes(b"")


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _bit_flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) * 2 // 3] ^= 0x01  # inside the stored tensors
    path.write_bytes(bytes(data))


def _foreign(path: Path) -> None:
    torch.save({"state_dict": {"weight": torch.zeros(3)}, "epoch": 99}, path)


@pytest.mark.slow
@pytest.mark.parametrize("damage", [
    pytest.param(_zero, id="ckpt-zero-bytes"),
    pytest.param(_truncate, id="ckpt-truncated"),
    pytest.param(_bit_flip, id="ckpt-bit-flip"),
    pytest.param(_foreign, id="ckpt-foreign"),
])
def test_damaged_newest_checkpoint_falls_back(ray_session, tiny_parts, checkpoints, tmp_path, damage):
    ck, digests = checkpoints
    mine = tmp_path / "ck"
    shutil.copytree(ck, mine)
    damage(mine / "checkpoint-000004.pt")
    said = []
    res = launch(parts=str(tiny_parts), workers=2, epochs=4, checkpoint_every=2, checkpoint_dir=str(mine), resume=True,
                 threads_per_worker=1, timeout_s=60, echo=said.append)
    assert [h["epoch"] for h in res.history] == [3, 4]
    assert res.digests == digests, "resumed from epoch 2, the run must end exactly as the uninterrupted one"
    warned = [s for s in said if "checkpoint-000004.pt" in s and "skipp" in s]
    assert warned and "\n" not in warned[0], said


@pytest.mark.slow
@pytest.mark.parametrize("case", [
    pytest.param("none-good", id="ckpt-none-good"),
    pytest.param("tmp-leftover", id="ckpt-tmp-leftover"),
    pytest.param("other-partition", id="ckpt-other-partition"),
])
def test_checkpoint_directory_faults(ray_session, tiny_parts, checkpoints, tmp_path, case):
    ck, _ = checkpoints
    mine = tmp_path / "ck"
    shutil.copytree(ck, mine)
    if case == "none-good":
        _zero(mine / "checkpoint-000004.pt")
        _foreign(mine / "checkpoint-000002.pt")
        _refused(tiny_parts, r"^--resume: no usable checkpoint in \S+ \(checkpoint-000004\.pt: .*; "
                             r"checkpoint-000002\.pt: .*\)$", checkpoint_dir=str(mine), resume=True)
    elif case == "tmp-leftover":  # what a driver killed while writing a checkpoint leaves
        (tmp_path / "new").mkdir()
        (tmp_path / "new" / ".tmp-checkpoint-k1ll3d").write_bytes(b"half a checkpoint")
        said = []
        launch(parts=str(tiny_parts), workers=2, epochs=1, checkpoint_dir=str(tmp_path / "new"), threads_per_worker=1,
               timeout_s=60, echo=said.append)
        assert _listing(tmp_path / "new") == ["checkpoint-000001.pt"]
        assert any(".tmp-checkpoint-k1ll3d" in line and "killed" in line for line in said), said
    else:
        other = _copy(tiny_parts, tmp_path)
        _rewrite(other, "part-00000/nodes.parquet", lambda t: _set_column(t, "features", lambda x: x + 1))
        _refused(other, r"checkpoint-000004\.pt: written for another partition", checkpoint_dir=str(mine),
                 resume=True, epochs=5)


# -- 3. nothing listens beyond the loopback ---------------------------------------------------------------
def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, i = [root], 0
    while i < len(out):
        out += children.get(out[i], [])
        i += 1
    return out


def _address(hex_addr: str) -> str:
    """``/proc/net/tcp*`` address (little-endian hex words) -> printable ``ip:port``."""
    import ipaddress

    host, port = hex_addr.split(":")
    raw = bytes.fromhex(host)
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.ip_address(raw)
    return f"{ip}:{int(port, 16)}"


def listening_sockets(pids: list[int]) -> list[tuple[str, int, str]]:
    """``(address, pid, command)`` of every listening TCP socket held by ``pids``."""
    owner: dict[str, int] = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                owner[target[8:-1]] = pid
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                cols = line.split()
                if cols[3] == "0A" and cols[9] in owner:  # 0A: LISTEN
                    pid = owner[cols[9]]
                    try:
                        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:60]
                    except OSError:
                        cmd = "?"
                    out.append((_address(cols[1]), pid, cmd.strip()))
    return out


def _loopback(address: str) -> bool:
    import ipaddress

    ip = ipaddress.ip_address(address.rsplit(":", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


@pytest.mark.slow
@pytest.mark.parametrize("where", [pytest.param("launch", id="listen-loopback-only")])
def test_nothing_listens_beyond_the_loopback(ray_session, tiny_parts, where):
    seen = []

    def scan(stats):
        if stats["epoch"] == 1:
            seen.extend(listening_sockets(_descendants(os.getpid())))

    driver = _driver(tiny_parts)
    driver.on_epoch = scan
    driver.run()
    assert seen, "the run's processes must hold some listening sockets (Ray's, the process group's)"
    outside = [s for s in seen if not _loopback(s[0])]
    assert not outside, f"listening beyond the loopback: {outside}"


# -- 4. input values, not just shapes -----------------------------------------------------------------------
def _bad_partition(tiny_parts: Path, tmp_path: Path, column: str, fn) -> Path:
    parts = _copy(tiny_parts, tmp_path)
    _rewrite(parts, "part-00001/nodes.parquet", lambda t: _set_column(t, column, fn))
    return parts


def _train_node_unlabelled(y):
    y[:] = np.where(np.arange(len(y)) % 2 == 0, -1, y)
    return y


def _absurd_label(y):
    y[3] = 10**12
    return y


def _nan_features(x):
    x[5, 2] = np.nan
    return x


def _inf_features(x):
    x[7, 0] = -np.inf
    return x


def _huge_features(x):
    return x * np.float32(1e36)  # finite, but a step at a huge learning rate overflows


@pytest.mark.slow
@pytest.mark.parametrize("column, fn, match", [
    pytest.param("label", _train_node_unlabelled, r"part-00001/nodes\.parquet: node \d+ is a train(ing)? node "
                 r"without a label", id="label-unlabelled-train-node"),
    pytest.param("label", _absurd_label, r"part-00001/nodes\.parquet: label 1000000000000", id="label-absurd"),
    pytest.param("features", _nan_features, r"part-00001/nodes\.parquet: features have NaN or infinite values",
                 id="features-nan"),
    pytest.param("features", _inf_features, r"part-00001/nodes\.parquet: features have NaN or infinite values",
                 id="features-inf"),
])
def test_bad_values_in_a_partition_are_refused(ray_session, tiny_parts, tmp_path, column, fn, match):
    parts = _bad_partition(tiny_parts, tmp_path, column, fn)
    _refused(parts, match)


@pytest.mark.slow
@pytest.mark.parametrize("lr", [pytest.param(1e30, id="loss-diverges")])
def test_a_diverging_loss_is_an_error_not_success(ray_session, tiny_parts, tmp_path, lr):
    parts = _bad_partition(tiny_parts, tmp_path, "features", _huge_features)
    epochs = []
    driver = _driver(parts, lr=lr, epochs=3)
    driver.on_epoch = epochs.append
    with pytest.raises(LaunchError, match=r"^epoch [123]: the training loss is (nan|inf) \(it diverged") as info:
        driver.run()
    assert driver.attempt == 1 and "\n" not in str(info.value)
    assert all(np.isfinite(e["loss"]) for e in epochs), "no epoch with a non-finite loss is reported"


def _graph(**kw):
    n = 6
    fields = dict(edge_index=torch.tensor([[0, 1, 2, 3, 4], [1, 2, 3, 4, 5]]), num_nodes=n,
                  x=torch.randn(n, 3), y=torch.tensor([0, 1, 0, 1, 0, 1]),
                  train_mask=torch.tensor([True, True, False, False, False, False]),
                  val_mask=torch.tensor([False, False, True, True, False, False]),
                  test_mask=torch.tensor([False, False, False, False, True, True]))
    fields.update(kw)
    return fields


def _edges_parquet(path: Path, src, dst) -> Path:
    pq.write_table(pa.table({"src": pa.array(src, pa.int64()), "dst": pa.array(dst, pa.int64())}), path)
    return path


def _planetoid_copy(tmp_path: Path) -> Path:
    from distgnn.data import default_data_dir

    folder = tmp_path / "planetoid"
    shutil.copytree(default_data_dir() / "planetoid", folder)
    return folder


def _case_value(case, tmp_path, capsys):
    """Run one input-value case; returns what went wrong as ``(kind, message)``."""
    if case == "graphdata-unlabelled-train-node":
        GraphData(**_graph(y=torch.tensor([0, -1, 0, 1, 0, 1])))
    elif case == "graphdata-label-beyond-nodes":
        GraphData(**_graph(y=torch.tensor([0, 1, 0, 1, 0, 10**12])))
    elif case == "partition-input-nan-features":
        from distgnn.partition.sources import GraphEdges, GraphInput

        data = GraphData(**_graph())
        x = data.x.numpy().copy()
        x[2, 1] = np.nan
        columns = {"features": x, "label": data.y.numpy(), "train_mask": data.train_mask.numpy()}
        partition(GraphInput(GraphEdges(data), columns, "g"), 2, tmp_path / "out", method="range")
    elif case in ("edge-list-absurd-id", "cli-absurd-id", "cli-absurd-num-nodes"):
        rng = np.random.default_rng(0)
        src, dst = rng.integers(0, 1_000_000, 1000), rng.integers(0, 1_000_000, 1000)
        dst[17] = 10**12
        edges = _edges_parquet(tmp_path / "edges.parquet", src, dst)
        if case == "edge-list-absurd-id":
            load_edge_list(edges)
        else:
            extra = ["--num-nodes", str(10**12 + 1)] if case == "cli-absurd-num-nodes" else []
            rc = partition_main([str(edges), "--parts", "2", "--out", str(tmp_path / "o"), "--method", "range", "-q",
                                 *extra])
            _, err = capsys.readouterr()
            raise DataError(f"rc={rc} {err.strip()}")
    elif case == "stream-absurd-id":
        rng = np.random.default_rng(0)
        src, dst = rng.integers(0, 1_000_000, 1000), rng.integers(0, 1_000_000, 1000)
        src[3] = 10**12
        edges = _edges_parquet(tmp_path / "edges.parquet", src, dst)
        rc = partition_main([str(edges), "--parts", "2", "--out", str(tmp_path / "o"), "--method", "stream", "-q"])
        _, err = capsys.readouterr()
        raise DataError(f"rc={rc} {err.strip()}")
    elif case == "planetoid-huge-shape":
        folder = _planetoid_copy(tmp_path)
        # allx declares 1708 x 58,548,009 cells: 10^11 float32 zeros (400 GB) for a few real entries
        (folder / "ind.cora.allx").write_bytes(_csr_pickle((1708, 58_548_009), [1.0], [0], [0] + [1] * 1708))
        load_planetoid("cora", root=folder)
    elif case == "planetoid-huge-test-id":
        folder = _planetoid_copy(tmp_path)
        ids = (folder / "ind.cora.test.index").read_text().split()
        ids[0] = str(10**12)
        (folder / "ind.cora.test.index").write_text("\n".join(ids) + "\n")
        load_planetoid("cora", root=folder)
    else:
        raise AssertionError(case)


@pytest.mark.parametrize("case, match", [
    pytest.param("graphdata-unlabelled-train-node", r"^y in 'graph' is -1 \(no label\) at node 1, which is in train_mask",
                 id="graphdata-unlabelled-train-node"),
    pytest.param("graphdata-label-beyond-nodes", r"^y in 'graph' has class id 1000000000000 but only 6 nodes",
                 id="graphdata-label-beyond-nodes"),
    pytest.param("partition-input-nan-features", r"features have NaN or infinite values \(first at node 2\)",
                 id="partition-input-nan"),
    pytest.param("edge-list-absurd-id", r"edges\.parquet: node id 1000000000000 \(column 'dst', row 17\) but only "
                 r"1000 edges", id="edge-list-absurd-id"),
    pytest.param("cli-absurd-id", r"^rc=2 error: \S*edges\.parquet: node id 1000000000000 \(column 'dst', row 17\)",
                 id="cli-absurd-id"),
    pytest.param("cli-absurd-num-nodes", r"^rc=2 error: .*1000000000001 nodes need about \d[\d,.]* [GT]iB of memory",
                 id="cli-absurd-num-nodes"),
    pytest.param("stream-absurd-id", r"^rc=2 error: \S*edges\.parquet: node id 1000000000000 \(column 'src'",
                 id="stream-absurd-id"),
    pytest.param("planetoid-huge-shape", r"^ind\.cora\.allx: declares a 1708 x 58548009 matrix",
                 id="planetoid-huge-shape"),
    pytest.param("planetoid-huge-test-id", r"^ind\.cora\.test\.index: test node id 1000000000000 is beyond",
                 id="planetoid-huge-test-id"),
])
def test_bad_input_values_are_one_line_errors(case, match, tmp_path, capsys):
    with pytest.raises(DataError, match=match) as info:
        _case_value(case, tmp_path, capsys)
    assert "\n" not in str(info.value)


def _nodes_with_list(path: Path, name: str) -> Path:
    rows = 6
    pq.write_table(pa.table({
        "id": pa.array(range(rows), pa.int64()),
        name: pa.array([[float(i), 1.0, 2.0] for i in range(rows)], pa.list_(pa.float32())),
        "label": pa.array([0, 1, 0, 1, 0, 1], pa.int64()),
    }), path)
    return path


@pytest.mark.parametrize("name", [
    pytest.param("features", id="list-column-features"),
    pytest.param("x", id="list-column-x"),
    pytest.param("feat", id="list-column-feat"),
])
def test_a_list_feature_column_is_never_dropped(tmp_path, name):
    edges = _edges_parquet(tmp_path / "edges.parquet", [0, 1, 2, 3, 4], [1, 2, 3, 4, 5])
    data = load_edge_list(edges, _nodes_with_list(tmp_path / "nodes.parquet", name))
    assert data.x is not None and data.x.shape == (6, 3) and data.x[4].tolist() == [4.0, 1.0, 2.0]


@pytest.mark.parametrize("scalar", [pytest.param("feat_0", id="list-column-ambiguous")])
def test_ambiguous_list_feature_columns_are_an_error(tmp_path, scalar):
    edges = _edges_parquet(tmp_path / "edges.parquet", [0, 1], [1, 2])
    nodes = _nodes_with_list(tmp_path / "nodes.parquet", "features")
    table = pq.read_table(nodes).append_column(scalar, pa.array([1.0] * 6, pa.float32()))
    pq.write_table(table, nodes)
    with pytest.raises(DataError, match=r"nodes\.parquet: both a list column 'features' and scalar feature columns "
                                        r"\(feat_0\); pass features="):
        load_edge_list(edges, nodes)


# -- 5. a crash-safe --overwrite ------------------------------------------------------------------------------
def _small_graph(k: int = 0) -> GraphData:
    return GraphData(**_graph(x=torch.full((6, 3), float(k))))


_CRASH = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {repo!r})
    import torch
    from distgnn.data import GraphData
    from distgnn.partition import partition, storage
    point = {point!r}
    if point == "between-moves":  # a filesystem without an atomic exchange: two renames
        storage._exchange = lambda a, b: False
    original = storage.AtomicOutput._move
    def move(self, src, dst):
        original(self, src, dst)
        if point == "between-moves" and ".old-" in dst:
            os._exit(9)
    storage.AtomicOutput._move = move
    original_exchange = getattr(storage, "_exchange", None)
    def exchange(a, b):
        ok = original_exchange(a, b)
        if point == "after-exchange":
            os._exit(9)
        return ok
    if point != "between-moves" and original_exchange is not None:
        storage._exchange = exchange
    def commit(self, _c=storage.AtomicOutput.commit):
        if point == "before-commit":
            os._exit(9)
        return _c(self)
    storage.AtomicOutput.commit = commit
    n = 6
    g = GraphData(edge_index=torch.tensor([[0, 1, 2, 3, 4], [1, 2, 3, 4, 5]]), num_nodes=n,
                  x=torch.full((n, 3), 7.0), y=torch.tensor([0, 1, 0, 1, 0, 1]))
    partition(g, 3, {out!r}, method="range", overwrite=True)
""")


@pytest.mark.slow
@pytest.mark.parametrize("point", [
    pytest.param("before-commit", id="overwrite-killed-before-commit"),
    pytest.param("after-exchange", id="overwrite-killed-after-exchange"),
    pytest.param("between-moves", id="overwrite-killed-between-moves"),
])
def test_killed_overwrite_leaves_a_partition(tmp_path, point):
    out = tmp_path / "out"
    partition(_small_graph(), 2, out, method="range")
    proc = subprocess.run([sys.executable, "-c", _CRASH.format(repo=str(REPO), point=point, out=str(out))],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    if point != "between-moves":  # an atomic exchange: the old or the new partition is there at every instant
        assert load_manifest(out).num_parts in (2, 3)
        verify(out)
    # the next run restores or cleans what the killed one left, and says so
    partition(_small_graph(), 2, out, method="range", overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["out"]
    verify(out)
    assert load_manifest(out).num_parts == 2


@pytest.mark.parametrize("left", [pytest.param(".out.old-0123456789ab", id="overwrite-restores-left-partition")])
def test_a_partition_left_beside_out_is_restored(tmp_path, caplog, left):
    """A crash between the two renames of a non-atomic filesystem: OUT is gone, OUT.old-* holds it."""
    out = tmp_path / "out"
    partition(_small_graph(), 2, out, method="range")
    os.rename(out, tmp_path / left)
    (tmp_path / ".out.tmp-0123456789ab").mkdir()
    partition(_small_graph(), 3, tmp_path / "other", method="range")  # another output: left alone
    with pytest.raises(PartitionError, match="output directory exists and is not empty"):
        partition(_small_graph(), 2, out, method="range")  # the restored partition is refused without overwrite
    assert sorted(os.listdir(tmp_path)) == ["other", "out"]
    assert load_manifest(out).num_parts == 2
    assert "restored" in caplog.text


@pytest.mark.parametrize("case", [
    pytest.param("not-a-partition", id="overwrite-refuses-non-partition"),
    pytest.param("holds-the-input", id="overwrite-refuses-input-inside"),
    pytest.param("input-is-out", id="overwrite-refuses-input-is-out"),
    pytest.param("leftovers", id="overwrite-cleans-leftovers"),
])
def test_overwrite_safety(tmp_path, capsys, case):
    out = tmp_path / "out"
    if case == "not-a-partition":
        out.mkdir()
        (out / "thesis.tex").write_text("years of work")
        with pytest.raises(PartitionError, match=r"out: refusing to overwrite a directory that is not a distgnn "
                                                 r"partition \(no manifest\.json\)"):
            partition(_small_graph(), 2, out, method="range", overwrite=True)
        assert (out / "thesis.tex").read_text() == "years of work"
    elif case == "holds-the-input":
        partition(_small_graph(), 2, out, method="range")
        edges = _edges_parquet(out / "edges.parquet", [0, 1, 2], [1, 2, 0])
        rc = partition_main([str(edges), "--parts", "2", "--out", str(out), "--overwrite", "-q", "--method", "range"])
        err = capsys.readouterr().err
        assert rc == 2 and re.search(r"refusing to overwrite \S+out: it contains the input \S+edges\.parquet", err), err
        assert edges.exists()
    elif case == "input-is-out":
        partition(_small_graph(), 2, out, method="range")
        rc = partition_main([str(out), "--parts", "3", "--out", str(out), "--overwrite", "-q", "--method", "range"])
        err = capsys.readouterr().err
        assert rc == 2 and "it contains the input" in err, err
        assert load_manifest(out).num_parts == 2
    else:
        partition(_small_graph(), 2, out, method="range")
        for name in (".out.tmp-0123456789ab", ".out.old-0123456789ab", ".out.tmp-999999-0123456789ab"):
            shutil.copytree(out, tmp_path / name)
        partition(_small_graph(), 3, out, method="range", overwrite=True)
        assert sorted(os.listdir(tmp_path)) == ["out"]
        assert load_manifest(out).num_parts == 3


# -- 6. environment: RAY_ADDRESS, a SIGKILLed driver ----------------------------------------------------------
def _driver_process(parts: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "distgnn.launch", "--parts", str(parts), "--workers", "2", "--threads-per-worker", "1",
         *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
        env={k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None})


def _worker_pids(proc: subprocess.Popen, timeout: float = 150) -> tuple[list[int], str]:
    """Read the driver's output until the first epoch; the worker pids it printed."""
    pids, lines = [], []
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        lines.append(line)
        m = re.match(r"worker \d+: .* pid (\d+),", line)
        if m:
            pids.append(int(m.group(1)))
        if line.startswith("epoch") or time.monotonic() > deadline:
            break
    return pids, "".join(lines)


def _ray_address() -> str:
    import ray

    return ray.get_runtime_context().gcs_address


@pytest.mark.slow
@pytest.mark.parametrize("variable", [pytest.param("RAY_ADDRESS", id="ray-address-env")])
def test_ray_address_in_the_environment_joins_that_cluster(ray_session, tiny_parts, variable):
    proc = _driver_process(tiny_parts, "--epochs", "1", env={variable: _ray_address()})
    pids, head = _worker_pids(proc)
    out = head + proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, out
    assert f"joining the Ray cluster at {_ray_address()} (RAY_ADDRESS)" in out
    assert len(pids) == 2 and all(p in _descendants(os.getpid()) or gone(p, 0.1) for p in pids), \
        "the workers must run in this session's cluster"


@pytest.mark.slow
@pytest.mark.parametrize("joined", [
    pytest.param(False, id="sigkill-driver-own-ray"),
    pytest.param(True, id="sigkill-driver-joined-cluster"),
])
def test_sigkilled_driver_leaves_no_worker(ray_session, tiny_parts, joined):
    extra = ["--address", _ray_address()] if joined else []
    proc = _driver_process(tiny_parts, "--epochs", "100000", "--eval-every", "1000", *extra, env={"RAY_ADDRESS": None})
    try:
        pids, out = _worker_pids(proc)
        assert len(pids) == 2, out
        proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        proc.wait(30)
        survived = []
        for pid in pids:
            assert gone(pid, 20.0), f"worker {pid} still runs 20 s after its driver was killed"
            survived.append(time.monotonic() - killed)
        print(f"workers gone {max(survived):.1f} s after the driver's SIGKILL ({'joined' if joined else 'own'} Ray)")
        assert max(survived) < 10.0
    finally:
        if proc.poll() is None:
            proc.kill()
