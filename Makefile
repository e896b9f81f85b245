# distgnn: `make demo` and `make test` set everything up on a fresh machine (see scripts/setup.sh).
PY := $(if $(VIRTUAL_ENV),$(VIRTUAL_ENV)/bin/python,.venv/bin/python)

.PHONY: setup demo test bench clean

setup:
	@bash scripts/setup.sh test

demo: setup
	$(PY) -m distgnn.launch

test: setup
	$(PY) -m pytest

bench:
	@bash scripts/setup.sh test,bench
	$(PY) benchmarks/ops.py
	$(PY) benchmarks/layers.py
	$(PY) benchmarks/pooling.py
	$(PY) benchmarks/equivariant.py
	$(PY) benchmarks/sampling.py --sections sampling,epochs
	$(PY) benchmarks/distributed.py

clean:
	rm -rf .venv .pytest_cache build *.egg-info
