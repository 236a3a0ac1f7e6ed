"""The headline summary.json, paired differences, a residual adapter's three rows, resume safety."""

from __future__ import annotations

import json
import shutil

import pytest

from fusionrec.cli import main
from tests.evaluation.conftest import HOME, QUICK

PNG = b"\x89PNG\r\n\x1a\n"
NUMBERS = {"HR@1", "HR@5", "NDCG@10", "MRR", "valid", "users"}


def _argv(*args: str, extra: tuple[str, ...] = ()) -> list[str]:
    return [
        "eval",
        *args,
        "models.profile=tiny",
        f"paths.home={HOME}",
        *QUICK,
        "eval.ablations=false",
        *extra,
    ]


def _folder(name: str):
    path = HOME / "reports" / name
    shutil.rmtree(path, ignore_errors=True)
    return path


def test_changed_adapter_or_candidates_refuse_the_report_folder(tmp_path):
    from fusionrec.evaluation.protocols import candidates_path
    from fusionrec.evaluation.records import RecordsMismatch, check_folder
    from tests.conftest import make_config

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    for name, data in (("adapter_model.safetensors", b"lora"), ("residual.json", b'{"llm_weight": 0.1}')):
        (adapter / name).write_bytes(data)
    cfg = make_config("tiny", home=tmp_path, overrides=[f"agent.adapter={adapter}"])
    cands = candidates_path(cfg, "test")
    cands.parent.mkdir(parents=True)
    cands.write_text("[]")
    report = tmp_path / "reports" / "r"
    check_folder(report, cfg)
    check_folder(report, cfg)  # same inputs: resumes
    (adapter / "residual.json").write_bytes(b'{"llm_weight": 0.2}')  # retrained in place
    with pytest.raises(
        RecordsMismatch, match=r"r holds results made with other settings \(inputs.adapter_sha256\)"
    ):
        check_folder(report, cfg)
    (adapter / "residual.json").write_bytes(b'{"llm_weight": 0.1}')
    check_folder(report, cfg)
    cands.write_text("[ ]")
    with pytest.raises(RecordsMismatch, match="inputs.candidates_sha256"):
        check_folder(report, cfg)


def test_summary_replaces_its_section_and_keeps_the_others(data_cfg, tmp_path):
    summary = tmp_path / "docs" / "results" / "summary.json"
    summary.parent.mkdir(parents=True)
    summary.write_text(json.dumps({"redial": {"kept": True}, "ml100k_loo": {"old": 1}, "command": "old"}))
    _folder("summary-baselines")
    argv = _argv("--limit", "30", "--systems", "popularity,bpr,sasrec", "--name", "summary-baselines",
                 "--summary", str(summary), extra=("eval.explain_sample=0",))  # fmt: skip
    assert main(argv) == 0
    data = json.loads(summary.read_text())
    assert data["redial"] == {"kept": True} and data["command"].startswith("fusionrec eval --limit 30")
    loo = data["ml100k_loo"]
    assert "old" not in loo and loo["users"] == 30 and loo["split"] == "test"
    assert len(loo["candidates_sha256"]) == 64 and loo["adapter"] is None
    assert loo["shipped"] is None and loo["prior"] is None and loo["paired"] == {}
    assert set(loo["systems"]) == {"popularity", "bpr", "sasrec"}
    for s in loo["systems"].values():
        assert set(s) >= NUMBERS and s["users"] == 30 and s["valid"] == 1.0
        assert 0.0 <= s["HR@1"] <= s["HR@5"] <= 1.0
    assert (summary.parent / "ml100k_systems.png").read_bytes()[:8] == PNG
    assert not (summary.parent / "valid_hr1_by_step.png").exists()  # no adapter, no training curve


@pytest.fixture(scope="module")
def residual_adapter(adapter, llm_cfg, tmp_path_factory):
    """The tiny LoRA checkpoint made a residual one: a BPR + SASRec + popularity prior fitted on the
    training sequences, residual weights, and a finetune metrics.csv with validation rows."""
    from fusionrec.agent.residual import Residual
    from fusionrec.data.prepare import load_prepared
    from fusionrec.data.splits import user_sequences
    from fusionrec.retrieval.collaborative.prior import fit_prior

    folder = tmp_path_factory.mktemp("residual") / "ranker"
    shutil.copytree(adapter, folder)
    items, interactions = load_prepared(llm_cfg, "movielens-100k")
    train = {u: s[:-2] for u, s in user_sequences(interactions).items() if len(s) >= 3}
    prior = fit_prior(
        train, [i.id for i in items], bpr_epochs=2, sasrec={"epochs": 1, "dim": 16, "layers": 1}
    )
    prior.weights = {"bpr": 1.0, "sasrec": 0.5, "popularity": 0.25}
    prior.save(folder)
    Residual(prior_weight=0.8, llm_weight=0.3).save(folder)
    (folder / "metrics.csv").write_text(
        "step,loss,valid_hr@1,valid_ndcg@10,valid_llm_hr@1,valid_prior_hr@1\n"
        "0,,0.30,0.5,0.1,0.30\n5,2.1,,,,\n10,1.9,0.34,0.55,0.15,0.30\n"
    )
    return folder


def _records(folder, system: str) -> dict[str, dict]:
    path = folder / "records" / f"ml100k-loo__{system}.jsonl"
    return {r["key"]: r for r in map(json.loads, path.read_text().splitlines())}


def test_residual_adapter_rows_summary_and_resume(residual_adapter, llm_cfg, tmp_path, capsys):
    from fusionrec.data.prepare import load_prepared
    from fusionrec.data.splits import user_sequences
    from fusionrec.evaluation.baselines import order_by
    from fusionrec.evaluation.protocols import load_loo
    from fusionrec.retrieval.collaborative.prior import Prior

    folder = _folder("residual")
    common = ("--limit", "8", "--llm-limit", "0", "--name", "residual")
    extra = (f"agent.adapter={residual_adapter}", "eval.explain_sample=1")
    assert main(_argv(*common, "--systems", "lora-hybrid", extra=extra)) == 0  # one pass, three rows
    rows = {v: _records(folder, f"lora-{v}") for v in ("hybrid", "llm", "prior")}
    assert all(len(r) == 8 for r in rows.values())
    before = {v: (folder / "records" / f"ml100k-loo__lora-{v}.jsonl").read_text() for v in rows}
    summary = tmp_path / "summary.json"
    systems = "popularity,bpr,sasrec,zeroshot-verbalizer,lora-hybrid,lora-llm,lora-prior"
    assert main(_argv(*common, "--systems", systems, "--summary", str(summary), extra=extra)) == 0
    assert before == {v: (folder / "records" / f"ml100k-loo__lora-{v}.jsonl").read_text() for v in rows}

    loo = json.loads((folder / "results.json").read_text())["protocols"]["ml100k-loo"]
    assert set(loo["systems"]) == set(systems.split(","))  # no lora-verbalizer for a residual adapter
    assert loo["systems"]["lora-hybrid"]["explanations"]["n"] == 1
    prior = Prior.load(residual_adapter)
    assert (
        loo["prior"] == f"lora-prior: {prior.name}" == "lora-prior: mix(bpr 1, sasrec 0.5, popularity 0.25)"
    )
    # lora-prior is the prior's ranking with the user's full sequence before the target
    items, interactions = load_prepared(llm_cfg, "movielens-100k")
    examples = {e.key: e for e in load_loo(llm_cfg, [i.id for i in items], interactions, "test")[0]}
    seqs = user_sequences(interactions)
    for key, rec in rows["prior"].items():
        ex = examples[key]
        history = seqs[ex.user][: seqs[ex.user].index(ex.target)]
        assert history[len(history) - len(ex.history) :] == ex.history  # the 20-item history is its tail
        assert rec["order"] == order_by(ex.candidates, prior.scores(ex.user, history, ex.candidates))
        llm, hybrid = rows["llm"][key]["scores"], rows["hybrid"][key]["scores"]
        assert hybrid == pytest.approx(
            [0.8 * p + 0.3 * q for p, q in zip(rec["scores"], llm, strict=True)], abs=1e-3
        )
    assert any(rows["llm"][k]["order"] != rows["prior"][k]["order"] for k in rows["prior"])

    data = json.loads(summary.read_text())["ml100k_loo"]
    assert data["shipped"] == "lora-hybrid" and data["adapter"] == "ranker" and data["users"] == 8
    assert set(data["systems"]) == set(systems.split(","))  # every system ranked all 8 users
    assert set(data["paired"]) == {f"lora-hybrid - {b}" for b in
                                   ("lora-prior", "popularity", "bpr", "sasrec", "zeroshot-verbalizer", "lora-llm")}  # fmt: skip
    for pair in data["paired"].values():
        for metric in ("HR@1", "NDCG@10"):
            mean, lo, hi = pair[metric]
            assert -1.0 <= lo <= mean <= hi <= 1.0 and pair["users"] == 8
    assert "Paired differences: `lora-hybrid`" in (folder / "results.md").read_text()
    for png in ("ml100k_systems.png", "valid_hr1_by_step.png"):
        assert (tmp_path / png).read_bytes()[:8] == PNG

    # the adapter retrained in place: the folder's records are refused, naming the folder
    (residual_adapter / "residual.json").write_text('{"prior_weight": 0.8, "llm_weight": 0.5}')
    capsys.readouterr()
    assert main(_argv(*common, "--systems", "lora-hybrid", extra=extra)) == 2
    err = capsys.readouterr().err
    assert str(folder) in err and "inputs.adapter_sha256" in err and len(err.strip().splitlines()) == 1


def test_training_curves_follow_the_warm_start_chain(tmp_path):
    """The curves plot the warm start's run first, then the run that continued it (a name under the
    checkpoints folder, as the trainer resolves `model.init_from`); a missing warm start ends the chain."""
    from fusionrec.evaluation.summary import plot_validation_curves, training_runs

    header = "step,loss,valid_hr@1,valid_prior_hr@1,valid_llm_hr@1\n"
    first, second = tmp_path / "checkpoints" / "phase1", tmp_path / "shipped" / "phase2"
    for folder, init, rows in ((first, "", "0,,0.5,0.5,0.1\n40,1.0,0.55,0.5,0.4\n"),
                               (second, "phase1", "0,,0.55,0.5,0.4\n10,0.9,0.6,0.5,0.45\n")):  # fmt: skip
        folder.mkdir(parents=True)
        (folder / "metrics.csv").write_text(header + rows)
        (folder / "config.yaml").write_text(f"model:\n  init_from: '{init}'\n")
    runs = training_runs(second, tmp_path / "checkpoints")
    assert list(runs) == ["phase1", "phase2"]
    assert runs["phase1"] == first / "metrics.csv"
    assert list(training_runs(second, tmp_path / "elsewhere")) == ["phase2"]
    out = plot_validation_curves(runs, tmp_path / "curves.png")
    assert out.read_bytes()[:8] == PNG
