# The two commands: `make run` and `make test`. Both set up what is missing first.
VENV ?= .venv
GEOMAP = $(VENV)/bin/geomap
STAMP = $(VENV)/.geomap-installed
DEMO_MEMBERS ?= 20000

.PHONY: run test setup lint bench bench-details stop

$(STAMP): pyproject.toml package.json package-lock.json scripts/bootstrap.sh scripts/vendor_assets.sh
	bash scripts/bootstrap.sh
	touch $@

setup: $(STAMP)

run: $(STAMP)
	$(GEOMAP) db start
	$(GEOMAP) db upgrade
	$(GEOMAP) conditions import
	$(GEOMAP) geo import --if-empty
	$(GEOMAP) symptoms import $(if $(wildcard var/hpo/hp.obo),--obo var/hpo/hp.obo)
	$(GEOMAP) demo --members $(DEMO_MEMBERS) --seed 1 --if-empty --no-publish
	$(GEOMAP) publish
	$(GEOMAP) serve

test: $(STAMP)
	$(VENV)/bin/python -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Side by side with supercluster and the scale curve, written into bench/README.md;
# e.g. make bench BENCH_ARGS="--sizes 100000,1000000,3000000". bench-details: page,
# browser, raw PostGIS and CSV import figures (bench/run.py).
BENCH_ARGS ?=
bench: $(STAMP)
	$(VENV)/bin/python bench/compare.py $(BENCH_ARGS)

bench-details: $(STAMP)
	$(VENV)/bin/python bench/run.py

stop:
	$(GEOMAP) db stop
