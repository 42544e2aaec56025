# Two commands on a fresh machine:  `make run`  and  `make test`.
# Each creates .venv if missing and installs the project into it; installing again is a no-op
# until pyproject.toml changes.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RUN    ?= runs/default
STREAM ?= split-mnist5k
SEED   ?= 0
JOBS   ?= 1

.PHONY: install run test test-gpu bench-gpu test-fast browser serve bench-serve bench-sweep faults lint bench bench-store bench-agent bench-step bench-startup compare results results-real-time results-label-delay results-continual-eval heldout heldout-real-time heldout-label-delay ablation clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/lifelong run --stream $(STREAM) --seed $(SEED) --out $(RUN)
	@echo
	@echo "next: source $(VENV)/bin/activate   (then every lifelong command of the README runs as written,"
	@echo "      e.g. lifelong report $(RUN); or call $(BIN)/lifelong directly)"

# two test processes (pytest-xdist): many tests wait on a child process, a server or Ray, so
# two overlap that wait with the other's work (9:53 one at a time, 7:16 two at a time with a
# compare running beside, on 2 cores). TEST_JOBS=1 runs them one after another
TEST_JOBS ?= 2
test: $(STAMP) browser
	$(BIN)/python -m pytest -q -n $(TEST_JOBS)

# the dashboard's test drives headless Chromium: Debian's chromium + chromium-driver
browser:
	@command -v chromedriver >/dev/null 2>&1 || { \
	  echo "installing chromium and chromium-driver (the dashboard test's browser)"; \
	  apt-get update -q && apt-get install -y -q chromium chromium-driver; } || { \
	  echo "could not install chromium: run apt-get install chromium chromium-driver as root"; \
	  exit 1; }

# the device tests on every CUDA device present; without one it says so and fails (CI never
# runs it). GPU_PYTHON: another interpreter (a GPU machine's own, with the project on PYTHONPATH)
GPU_PYTHON ?= $(BIN)/python
test-gpu: $(if $(filter $(BIN)/python,$(GPU_PYTHON)),$(STAMP))
	devices=$$($(GPU_PYTHON) bench/cuda_devices.py) || exit 1; \
	LIFELONG_TEST_DEVICES=$$devices $(GPU_PYTHON) -m pytest -q -p no:cacheprovider \
	  -o addopts=-ra -m "device or gpu" tests

bench-gpu: $(if $(filter $(BIN)/python,$(GPU_PYTHON)),$(STAMP))
	$(GPU_PYTHON) bench/cuda_devices.py >/dev/null && $(GPU_PYTHON) bench/gpu_bench.py

test-fast: $(STAMP)  # the edit loop: everything but process-spawning and whole-run tests
	$(BIN)/python -m pytest -q -m "not slow"

serve: $(STAMP)  # the agent as a service on http://127.0.0.1:8000/ (dashboard at /)
	$(BIN)/lifelong serve --out runs/served --n-classes 10

faults: $(STAMP)
	$(BIN)/python tests/faults_report.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench-store: $(STAMP)
	$(BIN)/python bench/store_bench.py

bench-agent: $(STAMP)
	$(BIN)/python bench/agent_bench.py

bench-step: $(STAMP)
	$(BIN)/python bench/step_bench.py

bench-startup: $(STAMP)
	$(BIN)/python bench/startup_bench.py

bench-serve: $(STAMP)
	$(BIN)/python bench/serve_bench.py

bench-sweep: $(STAMP)
	$(BIN)/python bench/sweep_bench.py

bench: bench-store bench-agent bench-step bench-startup

compare: $(STAMP)
	$(BIN)/lifelong compare --stream $(STREAM) --seeds 0-4 --memory 500 --jobs $(JOBS)

# the README's results: every method on every stream, with ours at four budgets
RESULT_STREAMS ?= split-mnist5k permuted-mnist5k rotated-mnist5k blurry-mnist5k split-digits split-task-mnist5k
results: $(STAMP)
	for s in $(RESULT_STREAMS); do \
	  $(BIN)/lifelong compare --stream $$s --seeds 0-4 --memory 500 --jobs $(JOBS) \
	    --compute 0.1,0.2,1.0 --out runs/results/$$s || exit 1; \
	  $(BIN)/python bench/publish_results.py runs/results/$$s || exit 1; \
	done

# the README's real-time table: the same methods on a stream that does not wait
results-real-time: $(STAMP)
	for s in $(RESULT_STREAMS); do \
	  $(BIN)/lifelong compare --stream $$s --seeds 0-4 --memory 500 --jobs $(JOBS) \
	    --compute 0.1,0.2 --real-time --out runs/results-rt/$$s || exit 1; \
	  $(BIN)/python bench/publish_results.py --real-time-only runs/results-rt/$$s || exit 1; \
	done

LATE_METHODS ?= ours,ours-1x,naive,replay,er-ace,der++,lamaml,mer,a-gem,gdumb,ewc,lwf,cumulative
results-label-delay: $(STAMP)  # every method's labels 10 batches late (docs/results/label-delay-10-*)
	for s in $(RESULT_STREAMS); do \
	  $(BIN)/lifelong compare --stream $$s --seeds 0-4 --memory 500 --jobs $(JOBS) \
	    --label-delay 10 --methods $(LATE_METHODS) --out runs/results-ld/$$s || exit 1; \
	  $(BIN)/python bench/publish_results.py runs/results-ld/$$s || exit 1; \
	done

CLASS_INCREMENTAL ?= split-mnist5k split-digits blurry-mnist5k
results-continual-eval: $(STAMP)  # min-ACC from evaluations every 10 updates (docs/results/eval-every-10-*)
	for s in $(CLASS_INCREMENTAL); do \
	  $(BIN)/lifelong compare --stream $$s --seeds 0-4 --memory 500 --jobs $(JOBS) \
	    --methods ours,der++ --eval-every 10 --real-time --out runs/results-ce/$$s || exit 1; \
	  $(BIN)/python bench/publish_results.py runs/results-ce/$$s || exit 1; \
	done

heldout: $(STAMP)  # the goals where nothing was tuned (docs/results/heldout.md)
	$(BIN)/python bench/heldout.py --jobs 2

heldout-real-time: $(STAMP)  # #27's real-time goals where nothing was tuned (docs/results/heldout-real-time.md)
	$(BIN)/python bench/heldout_real_time.py --jobs 2

heldout-label-delay: $(STAMP)  # #27's label-delay goal where nothing was tuned (docs/results/heldout-label-delay.md)
	$(BIN)/python bench/heldout_label_delay.py --jobs 2

ablation: $(STAMP)  # what each ingredient of the default adds (docs/results/ablation.md)
	$(BIN)/python bench/ablation.py --jobs 2

clean:
	rm -rf $(VENV) runs
