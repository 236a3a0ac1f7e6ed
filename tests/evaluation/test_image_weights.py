"""Images vs text in the retrieval ablation: paired differences, the validation weight grid, the verdict."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from fusionrec.evaluation import protocols as P
from fusionrec.evaluation.ablations import retrieval_ablations
from fusionrec.evaluation.vectors import VectorTable
from tests.conftest import make_config

DECOYS = [f"d{i}" for i in range(11)]
CANDS = ["target", *DECOYS]  # 12 candidates, so HR@10 can move


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def _table(images_point_at_target: bool) -> VectorTable:
    """History 'h1','h2' and 12 candidates in text, image and image_text. Misleading images: the text
    finds the target and the posters point at the decoys. Helpful images: the text points away from
    the target, the posters find it."""
    rng = np.random.default_rng(0)
    dims = {"text": 8, "image": 6, "image_text": 8}
    user = {b: _unit(rng.normal(size=d)) for b, d in dims.items()}
    vectors: dict[str, dict[str, np.ndarray]] = {b: {} for b in dims}
    for b, d in dims.items():
        for h in ("h1", "h2"):
            vectors[b][h] = user[b]
        for i, c in enumerate(CANDS):
            noise = _unit(rng.normal(size=d))
            if b == "text" and c == "target":
                vectors[b][c] = -user[b] if images_point_at_target else user[b]
            elif b == "text":
                vectors[b][c] = noise
            else:
                like = (c == "target") == images_point_at_target
                vectors[b][c] = _unit((1 if like else -1) * user[b] + (0.1 + 0.01 * i) * noise)
    return VectorTable(vectors, dims, "hand-made")


def _run(tmp_path, table: VectorTable, split: str) -> dict:
    examples = [P.LOOExample(f"u{k}", "target", ["h1", "h2"], CANDS) for k in range(3)]
    cfg = make_config(
        "tiny",
        home=tmp_path,
        overrides=["eval.bootstrap=50", f"eval.split={split}", 'retrieval.weights={"text": 1, "image": 1}'],
    )
    run = SimpleNamespace(cfg=cfg, ecfg=cfg.eval, table=table, examples=examples, bar=lambda xs, desc: xs)
    return retrieval_ablations(run)["images"]


def test_misleading_images_are_reported_and_weighted_out_on_validation(tmp_path):
    images = _run(tmp_path, _table(images_point_at_target=False), "valid")
    assert images["weights"] == {"image": 1.0, "image_text": 1.0}
    diff = images["text_image_minus_text"]
    assert set(diff) == {"early", "late", "cross"}
    assert diff["early"]["hr@10"][0] == -1.0  # the posters push the target below ten decoys
    assert "Images hurt under early" in images["note"]
    for fusion in ("early", "late"):  # the grid keeps the text ranking: image weights 0 (ties: smallest)
        chosen = images["chosen"][fusion]
        assert (chosen["image"], chosen["image_text"]) == (0.0, 0.0)
        assert chosen["minus_text"]["hr@10"][0] == 0.0
    assert len(images["grid"]) == 2 * 3 * 5


def test_helpful_images_get_a_weight_and_no_grid_on_the_test_split(tmp_path):
    valid = _run(tmp_path, _table(images_point_at_target=True), "valid")
    early = valid["chosen"]["early"]
    assert early["image"] + early["image_text"] > 0 and early["minus_text"]["hr@10"][0] > 0
    assert "do not hurt" in valid["note"]
    test = _run(tmp_path, _table(images_point_at_target=True), "test")
    assert "grid" not in test and "chosen" not in test  # weights are chosen on validation only
    assert test["text_image_minus_text"]["early"]["hr@10"][0] > 0
