"""The same recipe through `accelerate launch`: two CPU processes (gloo) complete a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fusionrec.config import REPO_ROOT
from fusionrec.settings import as_words
from tests.finetune.conftest import SMALL


def test_two_cpu_processes_complete_a_run(ft_cfg, tmp_path):
    summary = tmp_path / "summary.json"
    sets = as_words({**SMALL, "train.max_steps": 3})
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(REPO_ROOT / "finetune" / "accelerate" / "cpu_2proc.yaml"),
        "--main_process_port",
        "29531",
        str(REPO_ROOT / "finetune" / "train_script.py"),
        "--recipe",
        "tiny_smoke",
        "--output",
        str(tmp_path / "run"),
        "--summary",
        str(summary),
        *sets,
        "models.profile=tiny",
        f"paths.home={ft_cfg.paths.home}",
    ]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(summary.read_text())
    assert result["world_size"] == 2  # two processes really shared the work
    assert result["steps"] == 3 and len(result["losses"]) == 3
    assert all(loss == loss and loss > 0 for loss in result["losses"])  # finite
    last = Path(result["last_dir"])
    assert (last / "adapter_model.safetensors").is_file() and (last / "trainer_state.json").is_file()
    state = json.loads((last / "trainer_state.json").read_text())
    assert state["world_size"] == 2
    # each step drew grad_accum micro-batches per process: twice the examples of one process
    assert (
        result["throughput"]["examples"]
        == 3 * 2 * SMALL["train.grad_accum"] * SMALL["train.micro_batch_size"]
    )
