# Two commands a fresh machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-slow clean checkov smoke-image

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m training.demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# Scale tests that take minutes; CI runs them only where they fit its budget.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) .leadscore demo-out

# The serving image in a real container: leadscore image build (LocalModel.build_cpr_model), then
# deploy_to_local_endpoint. Uses Docker where it runs, else podman (scripts/container-runtime.sh).
# Exit 77 from the script means no runtime can be set up here: the reason is printed, then skipped.
smoke-image: $(STAMP)
	$(BIN)/python scripts/smoke_image.py; rc=$$?; \
	if [ $$rc -eq 77 ]; then echo "make smoke-image: SKIPPED (reason above)"; else exit $$rc; fi

# checkov pins packages that conflict with ours, so it gets its own virtualenv.
# Pinned: a new checkov release adds checks and could fail an unchanged infra/.
# --skip-download: no call to the vendor's platform for check metadata (works offline).
CHECKOV_VENV ?= .venv-checkov
CHECKOV_VERSION ?= 3.3.30

$(CHECKOV_VENV)/bin/checkov:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet "checkov==$(CHECKOV_VERSION)"

checkov: $(CHECKOV_VENV)/bin/checkov
	$(CHECKOV_VENV)/bin/checkov -d infra --framework terraform --quiet --compact --skip-download
