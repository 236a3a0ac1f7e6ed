"""`fusionrec eval` on the real data with the tiny profile: files written, seeded numbers, resuming."""

from __future__ import annotations

import json
import shutil

import pytest

from fusionrec.cli import main
from tests.conftest import ingested_catalog
from tests.evaluation.conftest import HOME, QUICK

PNG = b"\x89PNG\r\n\x1a\n"


def _argv(*args: str, extra: tuple[str, ...] = ()) -> list[str]:
    return ["eval", *args, "models.profile=tiny", f"paths.home={HOME}", *QUICK, *extra]


def _folder(name: str):
    path = HOME / "reports" / name
    shutil.rmtree(path, ignore_errors=True)
    return path


@pytest.fixture(scope="module")
def quick_run(eval_cfg):
    """`fusionrec eval --limit 50` with every available system, the ablations and explanations."""
    folder = _folder("quick")
    rc = main(_argv("--limit", "50", "--name", "quick"))
    assert rc == 0
    return folder


def test_quick_run_writes_json_markdown_and_plots(quick_run):
    report = json.loads((quick_run / "results.json").read_text())
    assert report["config"]["eval"]["limit"] == 50 and report["config"]["models"]["profile"] == "tiny"
    assert report["command"].startswith("fusionrec eval --limit 50 --name quick")
    loo = report["protocols"]["ml100k-loo"]
    assert loo["users"] == 50 and loo["llm_users"] == 8 and loo["users_total"] == 943
    systems = loo["systems"]
    expected = {"random", "popularity", "bpr", "sasrec", "retrieval", "zeroshot-verbalizer", "zeroshot-generative",
                "zeroshot-verbalizer/concise"}  # fmt: skip
    assert expected <= set(systems)
    assert loo["info"]["sasrec"]["epochs"] == 1 and loo["info"]["sasrec"]["seconds"] > 0
    for name in ("random", "popularity", "bpr", "sasrec", "retrieval"):
        s = systems[name]
        assert s["all"]["n"] == 50 and s["common"]["n"] == 8
        m = s["all"]["metrics"]
        for key in ("hr@1", "hr@5", "hr@10", "ndcg@5", "ndcg@10", "mrr"):
            assert 0.0 <= m[key]["lo"] <= m[key]["mean"] <= m[key]["hi"] <= 1.0
        assert m["hr@1"]["mean"] <= m["hr@5"]["mean"] <= m["hr@10"]["mean"]
        assert s["all"]["valid_ratio"] == 1.0
    verb = systems["zeroshot-verbalizer"]["common"]
    assert verb["n"] == 8 and verb["permutation_ratio"] == 1.0 and verb["latency"]["mean_s"] > 0
    gen = systems["zeroshot-generative"]["common"]["generative"]
    for key in ("valid_ratio", "rate_not_a_candidate", "rate_duplicate", "rate_already_seen", "rate_unparseable",
                "hr@1_unconditional", "hr@1_conditional_on_valid"):  # fmt: skip
        assert 0.0 <= gen[key] <= 1.0
    expl = systems["zeroshot-verbalizer"]["explanations"]
    assert expl["n"] == 2 and 0.0 <= expl["pass_rate"] <= 1.0
    abl = loo["ablations"]
    assert abl["available_modalities"] == ["text", "image"]
    got = {(r["fusion"], r["modalities"]) for r in abl["rows"] if r["available"]}
    assert {
        ("early", "text"),
        ("early", "text+image"),
        ("late", "text+image"),
        ("cross", "text+image"),
    } <= got
    assert set(abl["contribution"]["dropped"]) == {"text", "image"}
    llm_abl = loo["llm_ablations"]
    assert llm_abl["users"] == 3
    assert {r["item_tokens"] for r in llm_abl["rows"]} >= {"none (titles only)", "text", "text+image"}
    md = (quick_run / "results.md").read_text()
    assert md.startswith("# FusionRec evaluation")
    assert "fusionrec eval --limit 50" in md
    for name in expected:
        assert f"| `{name}` |" in md
    assert "| HR@1 | HR@5 | HR@10 | NDCG@5 | NDCG@10 | MRR |" in md
    for png in ("metric_by_system.png", "metric_by_ablation.png"):
        data = (quick_run / png).read_bytes()
        assert data[:8] == PNG and len(data) > 5000
    records = quick_run / "records" / "ml100k-loo__bpr.jsonl"
    assert len(records.read_text().splitlines()) == 50


def test_same_seed_same_numbers_and_resume(eval_cfg):
    args = ("--limit", "30", "--llm-limit", "4", "--systems", "baselines,zeroshot-verbalizer")
    extra = ("eval.ablations=false", "eval.explain_sample=0")
    numbers = []
    for name in ("seed-a", "seed-b"):
        folder = _folder(name)
        assert main(_argv(*args, "--name", name, extra=extra)) == 0
        loo = json.loads((folder / "results.json").read_text())["protocols"]["ml100k-loo"]
        numbers.append(
            {n: (s["all"] or {}).get("metrics") or s["common"]["metrics"] for n, s in loo["systems"].items()}
        )
    assert set(numbers[0]) == {"random", "popularity", "bpr", "sasrec", "retrieval", "zeroshot-verbalizer"}
    assert numbers[0] == numbers[1]
    # resume: the same name reuses every record (nothing appended), a larger limit adds only the new users
    rec = HOME / "reports" / "seed-b" / "records" / "ml100k-loo__random.jsonl"
    before = rec.read_text()
    assert main(_argv(*args, "--name", "seed-b", extra=extra)) == 0
    assert rec.read_text() == before
    assert (
        main(
            _argv("--limit", "40", "--llm-limit", "4", "--systems", "random", "--name", "seed-b", extra=extra)
        )
        == 0
    )
    lines = rec.read_text().splitlines()
    assert len(lines) == 40 and "\n".join(lines[:30]) + "\n" == before
    # another seed is refused in the same folder (its records were made with other candidates)
    assert main(_argv(*args, "--name", "seed-b", extra=(*extra, "eval.seed=1"))) == 2


def test_clear_errors(eval_cfg, tmp_path, capsys):
    _folder("errors")  # a folder left by an older run holds other settings (that error is tested above)
    assert main(_argv("--systems", "nosuch", "--name", "errors", extra=("eval.limit=5",))) == 2
    assert "'nosuch' is unknown" in capsys.readouterr().err
    assert main(_argv("--systems", "lora", "--name", "errors", extra=("eval.limit=5",))) == 2
    assert "'lora' is not available: no adapter" in capsys.readouterr().err
    empty = ["eval", "--limit", "5", "models.profile=tiny", f"paths.home={tmp_path}"]
    assert main(empty) == 2
    assert "run `fusionrec data prepare movielens-100k`" in capsys.readouterr().err
    assert main(_argv("--protocol", "nope", "--name", "errors")) == 2
    assert "eval.protocol='nope'" in capsys.readouterr().err


def test_redial_quick_run(eval_cfg, tmp_path):
    ingested_catalog(eval_cfg, ["text"], dataset="redial")
    folder = _folder("redial")
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"ml100k_loo": {"kept": True}, "command": "old"}))
    rc = main(_argv("--protocol", "redial", "--limit", "20", "--llm-limit", "4", "--name", "redial",
                    "--summary", str(summary), extra=("eval.redial_pool=50",)))  # fmt: skip
    assert rc == 0
    red = json.loads((folder / "results.json").read_text())["protocols"]["redial"]
    assert red["examples"] == 20 and red["llm_examples"] == 4 and red["catalog"] == 6924
    names = {"random", "popularity", "repeat", "co-mention", "repeat+co-mention", "bpr", "retrieval",
             "zeroshot-verbalizer"}  # fmt: skip
    assert set(red["systems"]) == names and "lora" in red["unavailable"]
    data = json.loads(summary.read_text())
    assert data["ml100k_loo"] == {"kept": True} and data["command"] == "old"  # other sections untouched
    assert data["redial"]["shipped"] == red["best"] and set(data["redial"]["systems"]) == names
    assert "no adapter trained on ReDial turns" in data["redial"]["note"]
    for name, s in red["systems"].items():
        m = s["all"]["metrics"]
        assert m["recall@1"]["mean"] <= m["recall@10"]["mean"] <= m["recall@50"]["mean"], name
        assert s["new"]["n"] <= s["all"]["n"]
    # the LLM re-ranks the retrieved top 20: recall@50 is retrieval's on the same turns
    assert (folder / "redial_by_system.png").read_bytes()[:8] == PNG
    assert "## ReDial" in (folder / "results.md").read_text()
