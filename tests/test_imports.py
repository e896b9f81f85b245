"""Importing distgnn for single-device use stays light: no Ray, Arrow or optional extras."""
import subprocess
import sys

HEAVY = ("ray", "pyarrow", "torch_geometric", "torch_scatter", "dgl", "pymetis", "scipy")


def test_core_imports_do_not_load_heavy_or_optional_packages():
    code = (
        "import sys, distgnn, distgnn.layers, distgnn.models, distgnn.train, distgnn.data, distgnn.partition;"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"imported at import time: {out}"
