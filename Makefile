# Two commands for users: `make demo` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_PIN := torch==2.13.0
EXTRAS ?= test,ros,train

.PHONY: demo test lint bench example clean

$(STAMP): pyproject.toml Makefile ros2_ws/src/lyra_sim_ros/setup.py
	@# open3d needs libusb-1.0 from Debian; install it when missing (root on these machines, sudo elsewhere).
	@if ! ldconfig -p 2>/dev/null | grep -q libusb-1.0.so.0; then \
		echo "installing libusb-1.0-0 for open3d"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		($$SUDO apt-get install -y -qq libusb-1.0-0 >/dev/null 2>&1 || \
		 ($$SUDO apt-get update -qq >/dev/null && $$SUDO apt-get install -y -qq libusb-1.0-0 >/dev/null)); \
	fi
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# torch first, from the pinned CPU wheel, so nothing below pulls a CUDA build.
	$(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	@# The ROS 2 package (ament_python) too, so `python -m lyra_sim_ros.world_camera` runs from the venv.
	$(PY) -m pip install -q -e ros2_ws/src/lyra_sim_ros
	@# Compile the CPU renderer now (numba caches it), not at the first render.
	$(PY) -m lyra_sim.rendering.warmup
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/lyra-sim demo --out out

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/bench_render.py
	$(PY) benchmarks/bench_decoder.py
	$(PY) benchmarks/bench_usd.py
	$(PY) benchmarks/bench_env.py
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_fuzz.py

example: $(STAMP)
	$(PY) examples/make_example_rgbd.py

clean:
	rm -rf $(VENV) out .pytest_cache
