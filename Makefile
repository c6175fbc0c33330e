# Two entry points, both starting from a machine with only Python 3.11:
#   make demo  - install the runtime and detect keywords in the bundled demo clip
#   make test  - install everything (training extras, Debian audio tools) and run every test
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := libsndfile1 libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins espeak-ng flite \
	festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts gcc clang gcc-arm-none-eabi libnewlib-arm-none-eabi

.PHONY: demo test runtime-env full-env apt

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

runtime-env: $(BIN)/python
	$(BIN)/pip install -q -e .

full-env: $(BIN)/python apt
	$(BIN)/pip install -q -e '.[train,mic,serve,peers,firmware,synth,piper,dev]'

# Debian packages, installed only when missing and only when running as root.
apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "not root: install these Debian packages yourself for the audio tests: $$missing"; fi; \
	fi

demo: runtime-env
	$(BIN)/kws detect

test: full-env
	$(BIN)/python -m pytest -q
