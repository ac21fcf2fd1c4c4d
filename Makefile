# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
PY := .venv/bin/python
MIXRAG := .venv/bin/mixrag
DEMO_INDEX := .demo-index
DEMO_DATA := data/demo/squad-dev-demo.json

.PHONY: setup setup-vllm demo test lint typecheck unit bench clean

setup:
	bash scripts/setup.sh

# vLLM's CPU build in .venv-vllm, for the tests against a real vLLM server (~7 min once)
setup-vllm:
	bash scripts/setup_vllm.sh

demo: setup
	$(MIXRAG) index $(DEMO_DATA) --index $(DEMO_INDEX)
	$(MIXRAG) info --index $(DEMO_INDEX)
	$(MIXRAG) search "What did Nikola Tesla receive in 1939?" --index $(DEMO_INDEX) -k 3
	$(MIXRAG) search "What did Nikola Tesla receive in 1939?" --index $(DEMO_INDEX) -k 3 --method hybrid
	$(MIXRAG) ask "Which NFL team won Super Bowl 50?" --index $(DEMO_INDEX) -k 5 --method hybrid

lint:
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench

typecheck:
	.venv/bin/mypy

unit:
	.venv/bin/python -m pytest -q

test: setup setup-vllm lint typecheck unit

clean:
	rm -rf $(DEMO_INDEX) .pytest_cache .mypy_cache .ruff_cache
