"""Non-English requests are read, not misread: the issue's two probes through the agent and the CLI.

"Ein lustiger Weltraumfilm aus den Neunzigern, bitte keinen Horror" once gave "genres: Horror" and
five horror films; "轻松的九十年代喜剧，不要恐怖片" lost the decade and the "no horror". Both run
through `Agent.respond` (the entry point the UI, the REPL and the evaluation share) and through
`fusionrec chat -m ...`, over the tiny agent's home (ML-100k slice, tiny models).
"""

from __future__ import annotations

import pytest

from fusionrec.types import DialogueState, Turn
from tests.conftest import home_config, ingested_catalog
from tests.reliability.conftest import cli

GERMAN = "Ein lustiger Weltraumfilm aus den Neunzigern, bitte keinen Horror"
CHINESE = "轻松的九十年代喜剧，不要恐怖片"
PROBES = [
    (GERMAN, ["language: de", "genres: Comedy, Sci-Fi", "no Horror", "years 1990-1999"],
     {"genres": ["Comedy", "Sci-Fi"], "exclude_genres": ["Horror"], "year_min": 1990, "year_max": 1999}),
    (CHINESE, ["language: zh", "genres: Comedy", "no Horror", "years 1990-1999"],
     {"genres": ["Comedy"], "exclude_genres": ["Horror"], "year_min": 1990, "year_max": 1999}),
]  # fmt: skip


@pytest.fixture(scope="module")
def languages_cfg(tiny_cfg, shared_data):
    """The tiny agent's home (the same as tests/agent's: its ingested slice is reused)."""
    from tests.agent.conftest import FAST, TINY_HOME, TINY_ITEMS

    cfg = home_config(tiny_cfg.models_dir, TINY_HOME, "tiny", FAST)
    ingested_catalog(cfg, ["text"], TINY_ITEMS)
    return cfg


@pytest.mark.parametrize(("text", "understood", "filters"), PROBES)
def test_probe_through_the_agent(languages_cfg, text, understood, filters):
    from fusionrec.agent.agent import Agent

    agent = Agent(languages_cfg)
    events = list(agent.respond(DialogueState(), Turn("user", text)))
    kinds = [e.kind for e in events]
    assert "error" not in kinds and kinds[-1] == "done" and events[-1].payload["ok"]
    retrieved = next(e.payload for e in events if e.kind == "retrieved")
    assert retrieved["understood"] == understood and retrieved["filters"] == filters
    for cand in retrieved["candidates"]:  # whatever the tiny catalog holds, nothing breaks the constraints
        assert "Horror" not in cand.item.genres and 1990 <= (cand.item.year or 0) <= 1999
        assert set(filters["genres"]) <= set(cand.item.genres)


def test_probes_through_the_cli(languages_cfg):
    from tests.agent.conftest import FAST

    home = languages_cfg.home
    result = cli(home, "chat", "-m", GERMAN, "-m", CHINESE, *FAST, timeout=240)
    assert result.rc == 0 and "Traceback" not in result.out + result.err, result.err
    assert f"you> {GERMAN}" in result.out and f"you> {CHINESE}" in result.out
    for _, understood, _ in PROBES:
        assert "; ".join(understood) in result.out
    assert "genres: Horror" not in result.out
