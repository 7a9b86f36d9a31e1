# qshpc: the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3
NODES ?=
PYTEST_ARGS ?=
export PYTHONDONTWRITEBYTECODE = 1

.PHONY: install install-gpu install-aer-mpi browser demo test test-fast bench lint slurm-up slurm-down slurm-status clean

# Installs what is missing: the package (editable) with its dev tools and the
# pip MPI runtime. Re-runs pip only when pyproject.toml changed.
# Then byte-compiles qshpc: with PYTHONDONTWRITEBYTECODE set (as here, and on many
# sites) an editable install would otherwise compile every module it imports again
# in each process: ~0.08 s of CPU per rank (what `pip install` of a wheel does once).
install: .install-stamp
	@$(PYTHON) -m compileall -q qshpc >/dev/null
.install-stamp: pyproject.toml
	$(PYTHON) -m pip install --disable-pip-version-check -q -e '.[dev]'
	@touch .install-stamp

# Headless Chromium for the report tests (Debian's package, with a font), when missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  command -v apt-get >/dev/null || { echo "chromium is missing and there is no apt-get: install Chromium" >&2; exit 1; }; \
	  ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1 || apt-get update -q; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core \
	  || { apt-get update -q && DEBIAN_FRONTEND=noninteractive \
	       apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core; }; }

# GPU nodes: qiskit-aer-gpu ships the same `qiskit_aer` module, so it replaces qiskit-aer.
install-gpu: install
	$(PYTHON) -m pip uninstall -y -q qiskit-aer
	$(PYTHON) -m pip install -q 'qiskit-aer-gpu'

# Aer built with MPI (one statevector split over many ranks), installed beside
# the PyPI qiskit-aer in .aer-mpi/ and used only by distributed steps (see
# docs/distributed.md). About 3 min on 2 cores the first time; afterwards the
# stamp .aer-mpi/build-info.json makes it a no-op. FORCE=1 rebuilds.
AER_MPI_APT = libopenblas-dev nlohmann-json3-dev libspdlog-dev
install-aer-mpi: install
	@dpkg -s $(AER_MPI_APT) >/dev/null 2>&1 || { \
	  echo "installing $(AER_MPI_APT)"; \
	  ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1 || apt-get update -q >/dev/null; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(AER_MPI_APT) >/dev/null || \
	  { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(AER_MPI_APT) >/dev/null; }; }
	$(PYTHON) -m qshpc.aer.distributed.build $(if $(FORCE),--force,)

demo: install
	$(PYTHON) examples/demo.py

slurm-up:
	bash slurm/devcluster.sh up $(if $(NODES),--nodes $(NODES),)

slurm-down:
	bash slurm/devcluster.sh down

slurm-status:
	bash slurm/devcluster.sh status

# Everything: unit, MPI (mpiexec -n 1/2/3), store faults, and the Slurm tests
# against the real 3-node dev cluster (single-node tests run on it too).
# A failed Aer-MPI build (network, compiler) does not stop the suite: the tests
# that need it then fail with the reason (QSHPC_REQUIRE_AER_MPI=1), the others run.
test: install browser
	-$(MAKE) --no-print-directory install-aer-mpi
	bash slurm/devcluster.sh up --nodes 3
	QSHPC_REQUIRE_AER_MPI=1 $(PYTHON) -m pytest -q -ra --durations=30 $(PYTEST_ARGS)

# No cluster: unit and MPI tests only.
test-fast: install browser
	$(PYTHON) -m pytest -q -ra -m "not slurm and not multinode" $(PYTEST_ARGS)

bench: install
	$(PYTHON) benchmarks/startup.py
	$(PYTHON) benchmarks/dispatch.py
	$(PYTHON) benchmarks/store.py
	$(PYTHON) benchmarks/scaling.py
	$(PYTHON) benchmarks/sweep.py
	$(PYTHON) benchmarks/report.py

lint: install
	$(PYTHON) -m ruff check qshpc tests benchmarks examples
	$(PYTHON) -m ruff format --check qshpc tests benchmarks examples
	$(PYTHON) -m mypy
	lint-imports

clean:
	rm -rf .install-stamp build *.egg-info .pytest_cache .mypy_cache .ruff_cache
# (the MPI Aer in .aer-mpi/ stays: `rm -rf .aer-mpi` to rebuild it from scratch)
