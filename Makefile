# usf-book: `make book` builds the book, `make test` runs the tests (see README.md).

VENV ?= .venv
PYTHON ?= $(shell command -v python3.11 || command -v python3)
BIN := $(VENV)/bin

# Data: $USFKIT_DATA when set, else ../shared/data when it exists (the project machines),
# else usfkit's default (the user cache dir). Absolute, since chapters run in chapters/.
ifeq ($(origin USFKIT_DATA),undefined)
  ifneq ($(wildcard ../shared/data),)
    export USFKIT_DATA := $(abspath ../shared/data)
  endif
endif

.PHONY: install book test full lock clean distclean

install: $(VENV)/.installed

# The virtual environment, rebuilt when the pins or the package metadata change.
$(VENV)/.installed: requirements-lock.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -r requirements-lock.txt
	$(BIN)/python -m pip install -e ".[book,test,cluster]"
	touch $@

# Run every chapter with papermill (quick profile), then build the HTML book.
book: $(VENV)/.installed
	$(BIN)/usf-reproduce --book --profile quick
	@echo "The book: _build/executed/_build/html/index.html"

# The tests, every docstring example of usfkit (doctests) and every chapter (nbval), in one run.
test: $(VENV)/.installed
	USFKIT_PROFILE=quick $(BIN)/python -m pytest tests --doctest-modules usfkit --nbval-lax --nbval-current-env chapters

# The paper's settings (meant for a GPU); results go to results/full/<chapter>/.
full: $(VENV)/.installed
	$(BIN)/usf-reproduce --profile full

# Rewrite requirements-lock.txt from the current venv (keeps the header comment).
lock: $(VENV)/.installed
	{ sed -n '/^#/p' requirements-lock.txt; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v -E '^#|@ file:|^usfkit==' \
	  | sed -E 's/^((nvidia-|cuda-|triton)[^;]*)$$/\1 ; sys_platform == "linux"/'; } > requirements-lock.tmp
	mv requirements-lock.tmp requirements-lock.txt

clean:
	rm -rf _build results/quick .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) *.egg-info
