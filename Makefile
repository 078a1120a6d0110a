# Certify — two commands on a fresh Debian machine:
#   make certify   install what is missing, build in release, certify every protocol, print the report
#   make test      install what is missing, run the Swift test suite (optimised build, in .build-tests)
# and the golden pipeline:
#   make goldens        regenerate every golden with the independent reference generators
#   make goldens-check  regenerate into a temporary folder and compare with the committed goldens
# and the Python package (python/):
#   make python-test    pip install ./python into python/.venv, run its tests and the examples (installs chromium)

SHELL := /bin/bash
SWIFT ?= swift
PY := /usr/bin/python3
# The pinned virtual environment of reference libraries Debian lacks (golden/requirements.txt). A
# generator whose second line is "# certify-venv: …" runs in it; every other one in /usr/bin/python3.
VENV := golden/.venv
VENV_PY := $(VENV)/bin/python
# Shell snippet: sets $$py to the interpreter for generator $$g.
PYFOR = py=$(PY); sed -n 2p "$$g" | grep -q '^\# certify-venv' && py=$(VENV_PY);
# System packages: HDF5 (library, headers, h5dump/h5diff), OpenBLAS (CBLAS), zlib, and the
# reference stack the generators and interop tests use (Debian's Python 3 packages).
APT_PACKAGES := pkg-config libhdf5-dev hdf5-tools libopenblas-dev zlib1g-dev \
	python3-numpy python3-h5py python3-yaml python3-torch python3-torchvision python3-scipy python3-sklearn python3-venv python3-pip \
	python3-pytest python3-setuptools python3-wheel python3-pil \
	dataset-fashion-mnist espeak-ng
# Every reference generator named by a protocol's `generator:` field (the protocols are the source of truth).
GENERATORS := $(shell grep -h '^generator:' -r protocols | awk '{print $$2}' | sort -u)
RELEASE := .build/release/certify

.PHONY: deps venv build certify test goldens goldens-check goldens-canary checklist clean fuzz fuzz-ci slurm-check python-venv python-test html-deps

deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "system packages present"; fi

build: deps
	$(SWIFT) build -c release --product certify

certify: build
	$(RELEASE) run --report .certify/report.md

# The tests run optimised (-c release; SwiftPM adds -enable-testing for their @testable imports) in their own
# scratch folder, so that `make build` and `make test` never rebuild each other's artefacts; the tests that
# spawn `certify` use the one built next to them (.build-tests/release/certify). See bench/README.md.
TEST_SCRATCH := .build-tests
test: deps
	$(SWIFT) test -c release --scratch-path $(TEST_SCRATCH)

checklist: build
	$(RELEASE) checklist

# Made once (idempotent): recreated only when golden/requirements.txt changes.
venv: $(VENV)/.installed
$(VENV)/.installed: golden/requirements.txt | deps
	rm -rf $(VENV)
	$(PY) -m venv --system-site-packages $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-input -r golden/requirements.txt
	@touch $@

goldens: deps venv
	@for g in $(GENERATORS); do $(PYFOR) echo "== $$g ($$py)"; $$py $$g || exit 1; done

goldens-check: build venv
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	for g in $(GENERATORS); do $(PYFOR) $$py $$g --out "$$tmp" >> "$$tmp/generators.log" 2>&1 || { cat "$$tmp/generators.log"; exit 2; }; done; \
	status=0; \
	for f in $$(cd golden && find . -name '*.h5' | sort); do \
	  if [ ! -f "$$tmp/$$f" ]; then \
	    pid=$$(h5dump -a /protocol "golden/$$f" 2>/dev/null | grep -o '"[a-z_]*\.[a-z_0-9]*"' | tr -d '"'); \
	    if [ -n "$$pid" ] && grep -q "skipped $$pid: fixtures not found" "$$tmp/generators.log"; then \
	      echo "golden/$$f: skipped (its generator needs third-party fixtures that are absent)"; continue; fi; \
	    echo "golden/$$f: no generator produced it"; status=1; continue; fi; \
	  $(RELEASE) diff "$$tmp/$$f" "golden/$$f" --drift > "$$tmp/diff.log" 2>&1; rc=$$?; \
	  if [ $$rc -ne 0 ]; then echo "golden/$$f drifted from its generator:"; cat "$$tmp/diff.log"; status=1; \
	  else echo "golden/$$f: $$(tail -1 "$$tmp/diff.log")"; fi; \
	done; \
	for f in $$(cd "$$tmp" && find . -name '*.h5' | sort); do \
	  [ -f "golden/$$f" ] || { echo "golden/$$f: generated but not committed (run make goldens)"; status=1; }; \
	done; \
	exit $$status

# The drift check must catch a changed generator, not only a different CPU: change one line of the
# softmax generator's arithmetic (x → x·(1 + 1e-9)) in a copy, regenerate, and require a difference.
goldens-canary: build
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	mkdir -p "$$tmp/golden"; cp -r golden/generate "$$tmp/golden/"; ln -s "$$PWD/protocols" "$$tmp/protocols"; \
	sed -i 's/torch.softmax(x, dim=int(axis))/torch.softmax(x * (1 + 1e-9), dim=int(axis))/' "$$tmp/golden/generate/core.py"; \
	grep -q 'x \* (1 + 1e-9)' "$$tmp/golden/generate/core.py" || { echo "goldens-canary: the softmax line to change was not found"; exit 2; }; \
	$(PY) "$$tmp/golden/generate/core.py" --out "$$tmp/out" core.softmax > /dev/null || exit 2; \
	$(RELEASE) diff "$$tmp/out/core/softmax.h5" golden/core/softmax.h5 --drift > "$$tmp/diff.log"; rc=$$?; \
	if [ $$rc -eq 1 ]; then echo "goldens-canary: a one-line change to the softmax generator is caught: $$(tail -1 "$$tmp/diff.log")"; \
	else echo "goldens-canary: the drift check MISSED a changed generator (exit $$rc)"; cat "$$tmp/diff.log"; exit 1; fi

# The fuzzer (tools/fuzz.py): mutated goldens, params, WAV/IDX headers and arguments, each run under a
# memory and a time limit; exit codes must be 0/1/2, no signal, no hang, no changed output, no orphan.
# fuzz-ci is the fast seeded subset .ci/run uses; fuzz is the full campaign (its last line is the summary).
fuzz: build
	$(PY) tools/fuzz.py --count 2000 --seed $${FUZZ_SEED:-7}

fuzz-ci: build
	$(PY) tools/fuzz.py --count 200 --seed 1 --time-limit 30

# A real single-node Slurm on localhost (installs slurm-wlm and munge when missing): a small audit as
# plan → job array → merge must equal the single-machine run byte for byte, also after a cancelled task.
slurm-check: build
	tools/slurm_check.sh

# The Python package: a virtual environment on Debian's torch/h5py/pytest (--system-site-packages), made once;
# the package is reinstalled when its sources change. Installing builds offline (--no-build-isolation: Debian's
# setuptools). The tests render the HTML reports in headless Chromium, which html-deps installs.
PY_VENV := python/.venv
PY_SOURCES := python/pyproject.toml $(shell find python/src -name '*.py' 2>/dev/null)
HTML_PACKAGES := chromium

html-deps:
	@dpkg-query -W -f='$${Status}' $(HTML_PACKAGES) 2>/dev/null | grep -q "install ok installed" || { \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(HTML_PACKAGES); }

python-venv: $(PY_VENV)/.installed
$(PY_VENV)/bin/python: | deps
	$(PY) -m venv --system-site-packages $(PY_VENV)
$(PY_VENV)/.installed: $(PY_SOURCES) | $(PY_VENV)/bin/python
	$(PY_VENV)/bin/pip install --quiet --no-input --no-build-isolation --no-deps ./python
	rm -rf python/build python/src/*.egg-info
	@touch $@

python-test: build python-venv html-deps
	cd python && CERTIFY_BIN=$(CURDIR)/$(RELEASE) CERTIFY_ROOT=$(CURDIR) ../$(PY_VENV)/bin/python -m pytest -p no:cacheprovider -q \
	  --certify-report=$(CURDIR)/.certify/python-report.html tests examples

clean:
	rm -rf .build $(TEST_SCRATCH) .certify
