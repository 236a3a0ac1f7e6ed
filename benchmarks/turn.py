"""Chat-turn latency: scripted turns through `Agent.respond`, p50/p95 of each stage, against a baseline.

Each dialogue has five turns: a typed request, a poster upload, a spoken request (espeak-ng, made
once under /tmp), a refinement and a like ("more like the second"). Per turn the clock marks the
candidates (retrieval), the ranked list, the first explanation token and the end of the turn.

With `--baseline REV` the same turns run first on that git revision (a worktree under /tmp,
imported instead of this tree), then on this tree, each in its own process with the same config
and home: the table shows both and their ratio, and how often both showed the same items.

Needs prepared models and an ingested catalog (`fusionrec chat --prepare`).
Usage: python benchmarks/turn.py [--baseline HEAD~1] [--dialogues 4] [--summary docs/results/summary.json]
       [--out benchmarks/results/turn.json] [section.key=value ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# this folder holds retrieval.py too: import the library from PYTHONPATH / the install, not from here
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
SPEECH_DIR = Path(tempfile.gettempdir()) / "fusionrec-bench-speech"
STAGES = {"retrieved": "retrieval", "ranked": "ranked list", "first_token": "first token", "done": "whole turn"}
KINDS = ("typed", "poster", "spoken", "refinement", "like")  # the turns of each dialogue, in order
# (typed request, poster item id, spoken request, refinement): each dialogue ends with a like
DIALOGUES = [
    ("a light comedy from the 90s", "1", "a scary movie with ghosts", "but calmer, no horror"),
    ("a tense crime thriller", "50", "a space adventure with aliens", "something older"),
    ("a romantic drama set in the past", "98", "a funny animated film for children", "no animation"),
    ("a western with gunfights", "127", "a war film about soldiers", "from the eighties"),
    ("a documentary about music", "181", "a musical with songs and dancing", "something newer"),
    ("a sad film about a family", "100", "a detective mystery", "not a thriller"),
]


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); nan for no values."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    pos = (len(xs) - 1) * q / 100
    lo, hi = int(pos), min(int(pos) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def speech(text: str) -> Path:
    """A 16 kHz wav of `text` spoken by espeak-ng (made once per text)."""
    SPEECH_DIR.mkdir(parents=True, exist_ok=True)
    out = SPEECH_DIR / (text.replace(" ", "_")[:60] + ".wav")
    if not out.is_file():
        raw = out.with_suffix(".raw.wav")
        subprocess.run(["espeak-ng", "-s", "150", "-w", str(raw), text], check=True, capture_output=True)
        subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-y", "-i", str(raw), "-ar", "16000", "-ac", "1", str(out)],
            check=True,
        )
        raw.unlink()
    return out


def script(cfg: object, n: int) -> list[list[tuple[str, list[tuple[str, str]]]]]:
    """The dialogues: per turn (text, [(kind, path)])."""
    from fusionrec.data.prepare import load_prepared

    posters = {i.id: i.media.get("image", "") for i in load_prepared(cfg, cfg.data.dataset)[0]}
    out = []
    for typed, poster, spoken, refine in DIALOGUES[:n]:
        out.append(
            [
                (typed, []),
                ("something like this poster", [("image", posters[poster])]),
                ("", [("audio", str(speech(spoken)))]),
                (refine, []),
                ("more like the second one", []),
            ]
        )
    return out


def run_turns(agent: object, dialogues: list) -> list[dict]:
    """Each turn's stage times (seconds from the turn's start) and the items shown."""
    from fusionrec.types import Attachment, DialogueState, Turn

    rows = []
    for d, turns in enumerate(dialogues):
        state = DialogueState()
        for t, (text, atts) in enumerate(turns):
            turn = Turn("user", text, [Attachment(kind, Path(p)) for kind, p in atts])
            marks: dict[str, float] = {}
            shown: list[str] = []
            t0 = time.perf_counter()
            for ev in agent.respond(state, turn):
                now = time.perf_counter() - t0
                if ev.kind == "retrieved":
                    marks["retrieved"] = now
                elif ev.kind == "ranked":
                    marks["ranked"] = now
                    shown = [c.item.id for c in ev.payload["shown"]]
                elif ev.kind == "explanation_token":
                    marks.setdefault("first_token", now)
                elif ev.kind == "done":
                    marks["done"] = now
                    ok = bool(ev.payload.get("ok"))
            rows.append({"dialogue": d, "turn": t, "text": text, "ok": ok, "shown": shown, **marks})
            print(
                f"  {d}.{t} {(text or atts[0][0])[:30]:30s} "
                + "  ".join(f"{STAGES[k]} {marks[k]:5.2f}s" for k in STAGES if k in marks),
                flush=True,
            )
    return rows


def worker(args: argparse.Namespace, overrides: list[str]) -> int:
    """Load the agent from whatever `agent` package is importable, warm it up, time the turns."""
    from fusionrec import env
    from fusionrec.cli import resolve_config

    cfg = resolve_config(args.config, overrides)
    env.configure(offline=cfg.models.profile != "online")
    import torch

    from fusionrec.agent.agent import Agent

    load = os.getloadavg()[0]
    agent = Agent(cfg)
    dialogues = script(cfg, args.dialogues)
    # warm-up on the last dialogue, never timed (first calls load encoders; files are memoised)
    run_turns(agent, script(cfg, len(DIALOGUES))[-1:])
    rows = run_turns(agent, dialogues)
    result = {
        "threads": torch.get_num_threads(),
        "load_before": load,
        "load_after": os.getloadavg()[0],
        "turns": rows,
    }
    Path(args.worker).write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


def stats(rows: list[dict]) -> dict[str, dict[str, float]]:
    return {
        k: {"p50": percentile([r[k] for r in rows if k in r], 50), "p95": percentile([r[k] for r in rows if k in r], 95)}
        for k in STAGES
    }


def run_side(label: str, pythonpath: Path, args: argparse.Namespace, overrides: list[str]) -> dict:
    """One worker process importing the library from `pythonpath`."""
    out = Path(tempfile.mkstemp(prefix=f"turn-{label}-", suffix=".json")[1])
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(out), "--dialogues", str(args.dialogues)]
    if args.config:
        cmd += ["--config", args.config]
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    print(f"{label}: library from {pythonpath}", flush=True)
    subprocess.run([*cmd, *overrides], check=True, cwd=ROOT, env=env)
    result = json.loads(out.read_text(encoding="utf-8"))
    out.unlink()
    result["stats"] = stats(result["turns"])
    result["by_kind"] = {
        kind: {k: v["p50"] for k, v in stats([r for r in result["turns"] if r["turn"] == t]).items()}
        for t, kind in enumerate(KINDS)
    }
    return result


def worktree(rev: str) -> Path:
    """A detached worktree of `rev` under /tmp (re-used when it is already there)."""
    sha = subprocess.run(["git", "rev-parse", rev], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()
    path = Path(tempfile.gettempdir()) / f"fusionrec-{sha[:10]}"
    if not path.is_dir():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), sha], cwd=ROOT, check=True, capture_output=True)
    return path


def table(sides: dict[str, dict]) -> None:
    names = list(sides)
    head = f"{'stage':12s}" + "".join(f" {n + ' p50':>14s} {n + ' p95':>14s}" for n in names)
    if len(names) == 2:
        head += f" {'p95 ratio':>10s}"
    print(head)
    for key, label in STAGES.items():
        line = f"{label:12s}" + "".join(
            f" {sides[n]['stats'][key]['p50']:13.2f}s {sides[n]['stats'][key]['p95']:13.2f}s" for n in names
        )
        if len(names) == 2:
            a, b = (sides[n]["stats"][key]["p95"] for n in names)
            line += f" {b / a:9.2f}x"
        print(line)
    for n in names:
        by_kind = sides[n]["by_kind"]
        print(f"{n} p50 by turn: " + ", ".join(
            f"{kind} {by_kind[kind]['ranked']:.2f}s ranked / {by_kind[kind]['done']:.2f}s whole" for kind in by_kind
        ))
    for n in names:
        s = sides[n]
        print(f"{n}: torch threads {s['threads']}, load average {s['load_before']:.2f} -> {s['load_after']:.2f}")


def agreement(base: list[dict], new: list[dict]) -> float:
    """Share of turns where both sides showed the same items in the same order."""
    pairs = list(zip(base, new, strict=True))
    return sum(a["shown"] == b["shown"] for a, b in pairs) / max(1, len(pairs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="", help="TOML/YAML config")
    parser.add_argument("--dialogues", type=int, default=4, help=f"dialogues of 5 turns (at most {len(DIALOGUES) - 1})")
    parser.add_argument("--baseline", default="", help="git revision to compare with (e.g. HEAD~1)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "turn.json"))
    parser.add_argument("--summary", default="", help="also write the 'turn' section of this summary.json")
    parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
    args, overrides = parser.parse_known_args(argv)
    if not 1 <= args.dialogues < len(DIALOGUES):
        parser.error(f"--dialogues: 1 to {len(DIALOGUES) - 1} (the last dialogue warms up)")
    if args.worker:
        return worker(args, overrides)
    sides = {}
    if args.baseline:
        sides["baseline"] = run_side("baseline", worktree(args.baseline), args, overrides)
    sides["current"] = run_side("current", ROOT, args, overrides)
    print()
    table(sides)
    cur = sides["current"]
    result = {"command": " ".join(["python benchmarks/turn.py", *(argv if argv is not None else sys.argv[1:])])}
    result.update({"cpu_count": os.cpu_count(), "baseline_rev": args.baseline, "sides": sides})
    if "baseline" in sides:
        result["agreement"] = agreement(sides["baseline"]["turns"], cur["turns"])
        print(f"same items shown on {result['agreement']:.0%} of turns")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    if args.summary:
        sys.path.insert(0, str(ROOT))
        from fusionrec.evaluation.summary import write_section

        section = {
            "turns": len(cur["turns"]),
            "ranked_p95_s": cur["stats"]["ranked"]["p95"],
            "first_token_p95_s": cur["stats"]["first_token"]["p95"],
            "whole_p95_s": cur["stats"]["done"]["p95"],
            "load": max(cur["load_before"], cur["load_after"]),
            "threads": cur["threads"],
            "command": result["command"],
        }
        if "baseline" in sides:
            base = sides["baseline"]["stats"]
            section["baseline"] = {
                "rev": args.baseline,
                "ranked_p95_s": base["ranked"]["p95"],
                "first_token_p95_s": base["first_token"]["p95"],
                "whole_p95_s": base["done"]["p95"],
            }
            section["agreement"] = result["agreement"]
        write_section(Path(args.summary), "turn", section)
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
