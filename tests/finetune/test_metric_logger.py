"""The metric logger writes exactly the rows it is given (CSV and TensorBoard) and a resumed run keeps
the rows up to its step."""

from __future__ import annotations

import csv

import pytest

from fusionrec.finetune.metric_logger import CSV_FILE, TB_DIR, MetricLogger

FIELDS = ["step", "loss", "lr", "valid_hr@1", "elapsed_s"]


def rows(folder):
    return list(csv.DictReader((folder / CSV_FILE).read_text(encoding="utf-8").splitlines()))


def scalars(folder) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder / TB_DIR))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_rows_and_scalars_are_what_was_logged(tmp_path):
    logger = MetricLogger(tmp_path, FIELDS)
    logger.log(1, {"loss": 2.5, "lr": 0.001})
    logger.log(2, {"loss": 2.25, "lr": 0.002})
    logger.log(2, {"valid_hr@1": 0.75, "elapsed_s": 3.0}, group="valid")
    logger.close()
    assert (tmp_path / CSV_FILE).read_text().splitlines()[0] == ",".join(FIELDS)
    assert rows(tmp_path) == [
        {"step": "1", "loss": "2.5", "lr": "0.001", "valid_hr@1": "", "elapsed_s": ""},
        {"step": "2", "loss": "2.25", "lr": "0.002", "valid_hr@1": "", "elapsed_s": ""},
        {"step": "2", "loss": "", "lr": "", "valid_hr@1": "0.75", "elapsed_s": "3.0"},
    ]
    tb = scalars(tmp_path)
    assert set(tb) == {"train/loss", "train/lr", "valid/hr@1", "valid/elapsed_s"}
    assert tb["train/loss"] == [(1, 2.5), (2, 2.25)]
    assert tb["valid/hr@1"] == [(2, 0.75)]


def test_a_name_outside_the_columns_is_refused(tmp_path):
    logger = MetricLogger(tmp_path, FIELDS)
    with pytest.raises(ValueError, match="grad_norm"):
        logger.log(1, {"grad_norm": 1.0})
    logger.close()


def test_a_resumed_log_keeps_the_rows_up_to_its_step(tmp_path):
    logger = MetricLogger(tmp_path, FIELDS)
    for step in (1, 2, 3):
        logger.log(step, {"loss": float(step)})
    logger.close()
    resumed = MetricLogger(tmp_path, FIELDS, resume_step=2)
    resumed.log(3, {"loss": 30.0})
    resumed.close()
    assert [(r["step"], r["loss"]) for r in rows(tmp_path)] == [("1", "1.0"), ("2", "2.0"), ("3", "30.0")]
    fresh = MetricLogger(tmp_path, FIELDS)  # a new run starts a new log
    fresh.close()
    assert rows(tmp_path) == []
