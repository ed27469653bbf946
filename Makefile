# Two entry points for a fresh machine (Python 3.11+, Java 17+, Maven):
#   make demo   - simulate a shop day, stream it through Kafka -> Spark -> Iceberg, build gold with Dagster
#   make test   - lint, unit, integration and quick benchmark suites, in one tox environment
PYTHON ?= python3
VENV := .venv

.PHONY: demo test jars clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

jars: $(VENV)/.installed
	$(VENV)/bin/shoplake jars

demo: jars
	$(VENV)/bin/shoplake demo

$(VENV)/bin/tox:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip 'tox>=4.20'

test: $(VENV)/bin/tox
	$(VENV)/bin/tox -e suites

clean:
	rm -rf .shoplake/demo .tox build *.egg-info
