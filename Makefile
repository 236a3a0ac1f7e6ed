# The two commands of the README: `make chat` (set up + prepare + chat) and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup prepare chat serve test lint bench

setup:
	bash scripts/setup.sh

prepare: setup
	$(BIN)/fusionrec models prepare --offline
	$(BIN)/fusionrec data prepare movielens-100k
	$(BIN)/fusionrec ingest

chat: setup
	$(BIN)/fusionrec chat --prepare

serve: prepare
	$(BIN)/fusionrec serve

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

bench: prepare
	$(BIN)/python benchmarks/retrieval.py
	$(BIN)/python benchmarks/ranking.py
	$(BIN)/python benchmarks/turn.py
	$(BIN)/python benchmarks/explanations.py
	$(BIN)/python benchmarks/requests.py
	$(BIN)/python benchmarks/chat_ranking.py
