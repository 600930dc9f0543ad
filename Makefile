# All set-up happens here; `make demo` and `make test` run it first when needed.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-done
SETUP_INPUTS := pyproject.toml setup.py scripts/setup.sh $(wildcard tcpwatch/*/_*.c)

.PHONY: setup test demo bench pcaps docs clean

setup: $(STAMP)

$(STAMP): $(SETUP_INPUTS)
	bash scripts/setup.sh
	touch $(STAMP)

test: setup
	$(VENV)/bin/pytest -q -rs

demo: setup
	$(VENV)/bin/tcpwatch demo

bench: setup
	$(PY) bench/resets_bench.py
	$(PY) bench/pcap_bench.py
	$(PY) bench/iplog_bench.py

pcaps: setup
	$(PY) -m tcpwatch.pcaps_gen pcaps

docs: setup
	$(PY) scripts/gen_cli_docs.py > docs/cli.md

clean:
	rm -rf $(VENV) build *.egg-info
