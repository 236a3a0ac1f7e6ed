"""The ReDial protocol: BPR feedback on hand-made dialogues, and the "new" filter on the real test split."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np

from fusionrec.data import redial_turns as R
from fusionrec.evaluation import protocols as P
from fusionrec.evaluation.redial import dialogue_interactions, run_redial, summary_section
from tests.evaluation.conftest import HOME
from tests.retrieval.test_conversation_prior import TRAIN


def test_bpr_feedback_is_one_pair_per_dialogue_and_movie():
    pairs = {(x.user, x.item) for x in dialogue_interactions(TRAIN)}
    assert len(pairs) == len(dialogue_interactions(TRAIN)) == 3 + 3 + 2


def test_new_filter_removes_exactly_the_already_mentioned_targets(data_cfg):
    """Real test split: popularity and repeat; `new` holds the targets not mentioned before, and its
    rankings never hold a movie mentioned before."""
    cfg = dataclasses.replace(data_cfg, eval=dataclasses.replace(data_cfg.eval, limit=300, bootstrap=50))
    folder = HOME / "reports" / "redial-new-filter"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    section = run_redial(cfg, folder, "popularity,repeat,co-mention,repeat+co-mention")
    from fusionrec.data.prepare import load_dialogues, load_prepared

    known = {i.id for i in load_prepared(cfg, "redial")[0]}
    examples = P.subset(
        [e for e in R.redial_examples(load_dialogues(cfg, "test")) if e.target in known], 300, cfg.eval.seed
    )
    repeated = [e for e in examples if e.target in e.mentioned]
    assert section["examples"] == 300 and 0 < len(repeated) < 300
    assert section["train_dialogues"] == 600 and section["train_splits"] == ["train", "valid"]
    for name, s in section["systems"].items():
        assert s["all"]["n"] == 300 and s["new"]["n"] == 300 - len(repeated), name
    from fusionrec.evaluation.records import Records

    rec = Records(folder, "redial", "repeat")
    for e in examples:
        r = rec.get(e.key)
        assert ("rank_new" in r) == (e.target not in e.mentioned)
        recent = [m for m in e.mentioned[::-1] if m in known][:10]
        assert r["top_all"][: len(recent)] == recent  # repeat: the most recent mention first
        if "top_new" in r:
            assert not set(r["top_new"]) & set(e.mentioned)
    # repeat finds every already-mentioned target within the movies mentioned so far
    assert all(rec.get(e.key)["rank_all"] <= len(e.mentioned) for e in repeated)
    summary = summary_section(section, "cmd")
    assert summary["split"] == "official-test" and summary["turns"] <= summary["examples"] == 300
    assert summary["shipped"] in {"popularity", "repeat", "co-mention", "repeat+co-mention"}
    best = summary["shipped"]
    assert set(summary["paired"]) == (set() if best == "popularity" else {f"{best} - popularity"})
    assert all(np.isfinite(v) for row in summary["systems"].values() for v in (row["R@10"], row["R@10_new"]))
