# Certify — two commands on a fresh Debian machine:
#   make certify   install what is missing, build in release, certify every protocol, print the report
#   make test      install what is missing, run the Swift test suite
# and the golden pipeline:
#   make goldens        regenerate every golden with the independent reference generators
#   make goldens-check  regenerate into a temporary folder and compare with the committed goldens

SHELL := /bin/bash
SWIFT ?= swift
PY := /usr/bin/python3
# System packages: HDF5 (library, headers, h5dump/h5diff), OpenBLAS (CBLAS), zlib, and the
# reference stack the generators and interop tests use (Debian's Python 3 packages).
APT_PACKAGES := pkg-config libhdf5-dev hdf5-tools libopenblas-dev zlib1g-dev \
	python3-numpy python3-h5py python3-yaml python3-torch python3-scipy python3-sklearn \
	dataset-fashion-mnist espeak-ng
# Every reference generator named by a protocol's `generator:` field (the protocols are the source of truth).
GENERATORS := $(shell grep -h '^generator:' -r protocols | awk '{print $$2}' | sort -u)
RELEASE := .build/release/certify

.PHONY: deps build certify test goldens goldens-check checklist clean fuzz fuzz-ci

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

test: deps
	$(SWIFT) test

checklist: build
	$(RELEASE) checklist

goldens: deps
	@for g in $(GENERATORS); do echo "== $$g"; $(PY) $$g || exit 1; done

goldens-check: build
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	for g in $(GENERATORS); do $(PY) $$g --out "$$tmp" >> "$$tmp/generators.log" 2>&1 || { cat "$$tmp/generators.log"; exit 2; }; done; \
	status=0; \
	for f in $$(cd golden && find . -name '*.h5' | sort); do \
	  if [ ! -f "$$tmp/$$f" ]; then \
	    pid=$$(h5dump -a /protocol "golden/$$f" 2>/dev/null | grep -o '"[a-z_]*\.[a-z_0-9]*"' | tr -d '"'); \
	    if [ -n "$$pid" ] && grep -q "skipped $$pid: fixtures not found" "$$tmp/generators.log"; then \
	      echo "golden/$$f: skipped (its generator needs third-party fixtures that are absent)"; continue; fi; \
	    echo "golden/$$f: no generator produced it"; status=1; continue; fi; \
	  $(RELEASE) diff "$$tmp/$$f" "golden/$$f" --path / --rtol 1e-12 --atol 1e-14 > "$$tmp/diff.log" 2>&1; rc=$$?; \
	  if [ $$rc -ne 0 ]; then echo "golden/$$f drifted from its generator:"; grep -v ": ok" "$$tmp/diff.log"; status=1; \
	  else echo "golden/$$f: $$(tail -1 "$$tmp/diff.log")"; fi; \
	done; \
	for f in $$(cd "$$tmp" && find . -name '*.h5' | sort); do \
	  [ -f "golden/$$f" ] || { echo "golden/$$f: generated but not committed (run make goldens)"; status=1; }; \
	done; \
	exit $$status

# The fuzzer (tools/fuzz.py): mutated goldens, params, WAV/IDX headers and arguments, each run under a
# memory and a time limit; exit codes must be 0/1/2, no signal, no hang, no changed output, no orphan.
# fuzz-ci is the fast seeded subset .ci/run uses; fuzz is the full campaign (its last line is the summary).
fuzz: build
	$(PY) tools/fuzz.py --count 2000 --seed $${FUZZ_SEED:-7}

fuzz-ci: build
	$(PY) tools/fuzz.py --count 200 --seed 1 --time-limit 30

clean:
	rm -rf .build .certify
