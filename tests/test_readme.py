"""The README is the front door: it must describe the code as it is."""
import re
from pathlib import Path

from distgnn.layers import REGISTRY

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_layer_table_lists_every_registered_layer_with_its_modes():
    rows = dict(re.findall(r"^\| `(\w+)\(.*?\| ([a-z, ]+) \|$", README, flags=re.M))
    assert set(rows) == set(REGISTRY), "README layer table and registry differ"
    for name, modes in rows.items():
        assert tuple(m.strip() for m in modes.split(",")) == REGISTRY[name].modes, name


def test_quick_start_is_two_make_commands_that_exist():
    quick = README.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^make (\w+)", quick, flags=re.M)
    assert commands == ["demo", "test"]
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    for target in commands:
        assert re.search(rf"^{target}:", makefile, flags=re.M)
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "make test" in ci
