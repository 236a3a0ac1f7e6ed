"""Request benchmark: hand-written requests, typed and spoken, through the real retriever.

    .venv/bin/python benchmarks/requests.py                         # report half, typed + spoken
    .venv/bin/python benchmarks/requests.py --summary docs/results/summary.json   # ... + the summary
    .venv/bin/python benchmarks/requests.py --tune fusion           # tuning half: fusion grid
    .venv/bin/python benchmarks/requests.py --tune speech           # tuning half: Whisper grid (~1 h)
    .venv/bin/python benchmarks/requests.py --tune correction       # tuning half: transcript correction
    .venv/bin/python benchmarks/requests.py --tune hypotheses       # tuning half: several transcripts fused

`benchmarks/requests.jsonl` holds requests written as people ask (descriptions without the title,
moods, "like X but Y", constraints), each with its target ML-100k item ids, its half (tune | report,
half of each kind) and its kind. Each request is searched in the ingested catalog of the home
(``--home``, default ./.fusionrec) by `retrieval.search.Retriever`, once per fusion strategy (early,
late rrf, late weighted, cross) and once per single text-space block the store has (text,
image_text, tfidf), and reported as hit@1/5/10. Spoken: espeak-ng reads each request in two voices
(VOICES), resampled to 16 kHz mono under ``--cache`` (never in the repository); the early retriever
gets the clip as an audio attachment (transcribed with the configured ``models.speech_*``, then
corrected toward the catalog's words, ``retrieval.speech_correction``), and the transcript it searched
is searched by the other systems as typed text, which is what the retriever does with a transcript.
WER is over Whisper-normalised words (of what Whisper heard; ``wer_searched``: after correction); latency is per spoken request
(decode + transcribe + search) against the typed search. Spoken hit@k per request is the mean
over the voices. Paired bootstrap intervals: each fusion vs the best single block, spoken vs typed.

Prints tables; writes benchmarks/results/requests.json (``--tune``: requests_tune.json) and, with
``--summary`` on the report half, the summary's "requests" section.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fusionrec import env  # noqa: E402
from fusionrec.config import Config, ConfigError, load_config  # noqa: E402

REQUESTS = REPO / "benchmarks" / "requests.jsonl"
KINDS = ("description", "mood", "like", "constraint")
HALVES = ("tune", "report")
KS = (1, 5, 10)
FUSIONS = {
    "early": ["retrieval.fusion=early"],
    "late_rrf": ["retrieval.fusion=late", "retrieval.late_combine=rrf"],
    "late_weighted": ["retrieval.fusion=late", "retrieval.late_combine=weighted"],
    "cross": ["retrieval.fusion=cross"],
}
TEXT_SPACE = ("text", "image_text", "tfidf")
VOICES = (("en-us", 175), ("en-gb", 140))  # espeak-ng voice, words per minute
WARM_UP = "warming up the speech model"
CORRECTION_BONUS = (0.0, 2.0, 4.0, 6.0, 8.0, 12.0)  # --tune correction: retrieval.speech_correction
MIN_WORD_PROB = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)  # --tune confidence: models.speech_min_word_prob
LEXICAL_WEIGHT = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)  # --tune lexical: retrieval.lexical_weight
LANGUAGES = (  # espeak-ng voice, request: does the speech model hear other languages (--languages)
    ("de", "Ein lustiger Weltraumfilm aus den Neunzigern, bitte keinen Horror"),
    ("cmn", "轻松的九十年代喜剧，不要恐怖片"),
    ("fr", "Une comédie spatiale des années quatre-vingt-dix, pas d'horreur s'il vous plaît"),
    ("es", "Una comedia espacial de los noventa, sin terror por favor"),
)
CACHE = Path.home() / ".cache" / "fusionrec" / "requests-speech"


# --- requests and clips ----------------------------------------------------------------------------
def load_requests(path: Path) -> list[dict[str, Any]]:
    """The requests, checked: one line naming the file, line and field for anything wrong."""
    out, seen = [], set()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            r = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not JSON ({exc.msg})") from None
        for key, ok in (
            ("id", isinstance(r.get("id"), str) and r["id"] not in seen),
            ("text", isinstance(r.get("text"), str) and r["text"].strip()),
            ("targets", isinstance(r.get("targets"), list) and r["targets"]),
            ("half", r.get("half") in HALVES),
            ("kind", r.get("kind") in KINDS),
        ):
            if not ok:
                raise ValueError(
                    f"{where}: field {key!r} is missing, empty, repeated or not one of the known values"
                )
        seen.add(r["id"])
        out.append({**r, "targets": [str(t) for t in r["targets"]]})
    return out


def speak(text: str, voice: str, wpm: int, cache: Path) -> Path:
    """espeak-ng reading of `text`, 16 kHz mono wav, cached by (voice, speed, text)."""
    key = hashlib.sha256(f"{voice}|{wpm}|{text}".encode()).hexdigest()[:16]
    path = cache / f"{voice}-{wpm}" / f"{key}.wav"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        raw = path.with_suffix(".raw.wav")
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(raw), text], check=True)
        subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-y", "-i", str(raw), "-ar", "16000", "-ac", "1", str(path)],
            check=True,
        )
        raw.unlink()
    return path


def word_errors(reference: str, heard: str) -> tuple[int, int]:
    """(word edits, reference words) after Whisper's English normalisation (numbers, spelling)."""
    from whisper.normalizers import EnglishTextNormalizer

    norm = EnglishTextNormalizer()
    ref, hyp = norm(reference).split(), norm(heard).split()
    row = list(range(len(hyp) + 1))
    for i, rw in enumerate(ref, start=1):
        diag, row[0] = row[0], i
        for j, hw in enumerate(hyp, start=1):
            diag, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diag + (rw != hw))
    return row[len(hyp)], len(ref)


# --- systems -------------------------------------------------------------------------------------
def config(home: Path, overrides: Sequence[str]) -> Config:
    return load_config(None, [f"paths.home={home}", *overrides])


def systems(home: Path, base: Sequence[str] = ()) -> dict[str, Any]:
    """Name -> Retriever: each fusion strategy, then each single text-space block the store has (the
    block's vectors alone: no lexical re-scoring)."""
    from fusionrec.retrieval.search import Retriever

    out = {name: Retriever(config(home, [*base, *over])) for name, over in FUSIONS.items()}
    for block in TEXT_SPACE:
        if block in out["early"].blocks:
            over = ["retrieval.fusion=late", f"retrieval.text_blocks={block}", "retrieval.lexical_weight=0"]
            out[f"block:{block}"] = Retriever(config(home, [*base, *over]))
    return out


def ranked(retriever: Any, text: str) -> list[str]:
    """The top ids of a search as the agent makes it (``retrieval.k`` candidates), cut to max(KS)."""
    return [c.item.id for c in retriever.retrieve(text)][: max(KS)]


def hits(ids: Sequence[str], targets: Sequence[str]) -> dict[str, float]:
    return {f"hit@{k}": float(any(t in ids[:k] for t in targets)) for k in KS}


def typed_run(requests: list[dict], found: dict[str, Any]) -> dict[str, Any]:
    """Per system and request: the ranked ids and hits; the early search's seconds per request."""
    out: dict[str, Any] = {"systems": {}, "seconds": []}
    for name, ret in found.items():
        ranked(ret, WARM_UP)  # encoders and the store load here, outside the timing
        per = {}
        for r in requests:
            t0 = time.perf_counter()
            ids = ranked(ret, r["text"])
            if name == "early":
                out["seconds"].append(time.perf_counter() - t0)
            per[r["id"]] = {"ids": ids, **hits(ids, r["targets"])}
        out["systems"][name] = per
    return out


def spoken_run(
    requests: list[dict],
    found: dict[str, Any],
    home: Path,
    speech: Sequence[str],
    cache: Path,
    all_systems: bool,
    ret: Any = None,
) -> dict[str, Any]:
    """Each request in each voice as an audio attachment of the early retriever (``ret``, else one
    with the ``speech`` overrides); the transcript it searched (heard, then corrected toward the
    catalog) through the other systems (``all_systems``) as typed text."""
    from fusionrec.retrieval.search import Retriever
    from fusionrec.types import Attachment

    ret = ret or Retriever(config(home, [*speech, *FUSIONS["early"]]))
    ret.retrieve("", [Attachment("audio", speak(WARM_UP, *VOICES[0], cache))], k=1)  # models load here
    names = list(found) if all_systems else ["early"]
    per: dict[str, dict[str, dict]] = {name: {} for name in names}
    clips, seconds, same = [], [], 0
    for r in requests:
        for voice, wpm in VOICES:
            t0 = time.perf_counter()
            got = ret.retrieve("", [Attachment("audio", speak(r["text"], voice, wpm, cache))])
            seconds.append(time.perf_counter() - t0)
            heard = " ".join(ret.last_query.transcripts if ret.last_query else [])
            searched = " ".join(ret.last_query.searched if ret.last_query else [])
            errors, words = word_errors(r["text"], heard)
            clips.append({"id": r["id"], "voice": voice, "heard": heard, "errors": errors, "words": words,
                          "searched": searched, "searched_errors": word_errors(r["text"], searched)[0]})  # fmt: skip
            ids = {"early": [c.item.id for c in got][: max(KS)]}
            for name in names[1:]:
                ids[name] = ranked(found[name], searched)
            same += ids["early"] == ranked(found["early"], searched)
            for name in names:
                rec = per[name].setdefault(r["id"], {"ids": [], **{f"hit@{k}": 0.0 for k in KS}})
                rec["ids"].append(ids[name])
                for key, value in hits(ids[name], r["targets"]).items():
                    rec[key] += value / len(VOICES)
    return {
        "systems": per,
        "clips": clips,
        "seconds": seconds,
        "wer": sum(c["errors"] for c in clips) / max(1, sum(c["words"] for c in clips)),
        "wer_searched": sum(c["searched_errors"] for c in clips) / max(1, sum(c["words"] for c in clips)),
        "same_as_typed_transcript": same / max(1, len(clips)),
    }


def language_check(home: Path, overrides: Sequence[str], cache: Path) -> list[dict[str, str]]:
    """What the configured speech model hears of LANGUAGES (transcript and detected language)."""
    from fusionrec import encoders

    audio = encoders.load_audio_encoder(config(home, overrides))
    out = []
    for voice, text in LANGUAGES:
        heard, language = audio.transcribe(speak(text, voice, VOICES[0][1], cache))
        out.append({"voice": voice, "said": text, "heard": heard, "language": language})
    return out


# --- aggregation ---------------------------------------------------------------------------------
def table(run: dict[str, Any], requests: list[dict]) -> dict[str, dict[str, Any]]:
    """Per system: mean hit@k with a bootstrap interval, and hit@5 per kind."""
    from fusionrec.evaluation.metrics import aggregate

    out = {}
    for name, per in run["systems"].items():
        row: dict[str, Any] = {}
        for k in KS:
            est = aggregate([per[r["id"]][f"hit@{k}"] for r in requests])
            row[f"hit@{k}"], row[f"hit@{k}_ci"] = est.mean, [est.lo, est.hi]
        row["hit@5_by_kind"] = {
            kind: aggregate([per[r["id"]]["hit@5"] for r in requests if r["kind"] == kind]).mean
            for kind in KINDS
        }
        out[name] = row
    return out


def paired(a: dict, b: dict, requests: list[dict], key: str = "hit@5") -> list[float]:
    from fusionrec.evaluation.metrics import paired_difference

    return paired_difference([a[r["id"]][key] for r in requests], [b[r["id"]][key] for r in requests])


def comparisons(typed: dict, spoken: dict | None, requests: list[dict]) -> dict[str, Any]:
    """Paired bootstrap [mean, lo, hi] of hit@5 (and hit@1): fusion - best block (typed, and spoken with
    the typed best block); spoken - typed."""
    rows = table(typed, requests)
    blocks = [n for n in rows if n.startswith("block:")]
    best = max(blocks, key=lambda n: (rows[n]["hit@5"], rows[n]["hit@1"]))
    out: dict[str, Any] = {"best_block": best, "fusion_minus_best_block": {}, "spoken_minus_typed": {}}
    for name in FUSIONS:
        out["fusion_minus_best_block"][name] = {
            key: paired(typed["systems"][name], typed["systems"][best], requests, key)
            for key in ("hit@1", "hit@5")
        }
    if spoken is not None:
        out["spoken_fusion_minus_best_block"] = {name: {
            key: paired(spoken["systems"][name], spoken["systems"][best], requests, key) for key in ("hit@1", "hit@5")
        } for name in FUSIONS}  # fmt: skip
    for name in (spoken or {}).get("systems", {}):
        out["spoken_minus_typed"][name] = {
            key: paired(spoken["systems"][name], typed["systems"][name], requests, key)
            for key in ("hit@1", "hit@5")
        }
    return out


def latency(typed: dict, spoken: dict | None) -> dict[str, Any]:
    from fusionrec.evaluation.metrics import latency_summary

    out = {"typed": latency_summary(typed["seconds"])}
    if spoken:
        out["spoken"] = latency_summary(spoken["seconds"])
        out["spoken_minus_typed_p50_s"] = out["spoken"]["p50_s"] - out["typed"]["p50_s"]
    return out


# --- tuning grids --------------------------------------------------------------------------------
def fusion_grid() -> dict[str, list[str]]:
    """Typed-request grid: does the poster bridge earn a vote (at a per-block weight), which RRF k."""
    both = "retrieval.text_blocks=text,tfidf,image_text"
    grid: dict[str, list[str]] = {}
    for name, over in FUSIONS.items():
        grid[f"{name} | text only"] = over
        weights = (0.1, 0.25, 0.5, 1.0) if name != "cross" else (0.5,)  # cross learns its own weights
        for w in weights:
            ks = (0, 10, 30, 60, 100) if name == "late_rrf" else (60,)
            for k in ks:
                weight = json.dumps(
                    {"text": 1.0, "image": 0.5, "audio": 0.25, "video": 0.25, "image_text": w}
                )
                label = f"{name} | +image_text w={w}" + (f" k={k}" if name == "late_rrf" else "")
                grid[label] = [*over, both, f"retrieval.weights={weight}", f"retrieval.rrf_k={k}"]
    return grid


def speech_grid(models_dir: Path) -> dict[str, list[str]]:
    """Spoken-request grid: model x beam x domain prompt, and temperature fallback off for the best."""
    from fusionrec.models.config import SPEECH_PROMPT

    grid: dict[str, list[str]] = {}
    for model in ("tiny.en", "base"):
        path = models_dir / "whisper" / f"{model}.pt"
        for beam in (1, 5):
            for prompt in ("", SPEECH_PROMPT):
                name = f"{model} beam={beam} prompt={'yes' if prompt else 'no'}"
                grid[name] = [
                    f"models.speech={path}",
                    f"models.speech_beam_size={beam}",
                    f"models.speech_prompt={prompt}",
                ]
        grid[f"{model} beam=5 prompt=yes fallback=no"] = [
            *grid[f"{model} beam=5 prompt=yes"],
            "models.speech_temperatures=0.0",
        ]
    return grid


def correction_grid(
    requests: list[dict], home: Path, overrides: Sequence[str], cache: Path
) -> dict[str, Any]:
    """Spoken tuning half at each ``retrieval.speech_correction`` bonus: Whisper hears each clip once
    (a first pass with correction off; the audio encoder then keeps every clip's features), so the rows
    differ by the correction and the search only. ``seconds_p50`` per row is the spoken request
    without transcription; the first row with a bonus also pays Whisper's scoring of each clip."""
    from fusionrec import encoders
    from fusionrec.evaluation.metrics import latency_summary
    from fusionrec.retrieval.search import Retriever

    early = [*overrides, *FUSIONS["early"]]
    found = {"early": Retriever(config(home, early))}
    typed = table(typed_run(requests, found), requests)["early"]
    out: dict[str, Any] = {"typed early": {k: typed[k] for k in ("hit@1", "hit@5", "hit@10")}}
    ret = Retriever(config(home, [*early, "retrieval.speech_correction=0"]))
    encoders.load_audio_encoder(ret.cfg).memo.size = len(requests) * len(VOICES) + 1
    spoken_run(requests, found, home, (), cache, all_systems=False, ret=ret)  # Whisper hears every clip
    for bonus in CORRECTION_BONUS:
        ret.cfg = config(home, [*early, f"retrieval.speech_correction={bonus}"])
        run = spoken_run(requests, found, home, (), cache, all_systems=False, ret=ret)
        row = table(run, requests)["early"]
        changed = [f"{c['id']} {c['voice']}: {c['heard']!r} -> {c['searched']!r}" for c in run["clips"]
                   if c["heard"] != c["searched"]]  # fmt: skip
        out[f"bonus={bonus}"] = {
            **{k: row[k] for k in ("hit@1", "hit@5", "hit@10")},
            "wer": run["wer"], "wer_searched": run["wer_searched"],
            "seconds_p50": latency_summary(run["seconds"])["p50_s"], "changed": changed,
        }  # fmt: skip
        print(f"bonus={bonus}", json.dumps({k: v for k, v in out[f"bonus={bonus}"].items() if k != "changed"}),
              flush=True)  # fmt: skip
    return out


def heard_clips(
    requests: list[dict], home: Path, overrides: Sequence[str], cache: Path
) -> tuple[list[tuple[dict, str, Any]], list[float]]:
    """Each request in each voice, heard once with word probabilities: (request, voice, features), and
    the seconds of each transcription."""
    from fusionrec import encoders

    early = [*overrides, *FUSIONS["early"]]
    audio = encoders.load_audio_encoder(config(home, [*early, "models.speech_min_word_prob=0.01"]))
    audio.encode([speak(WARM_UP, *VOICES[0], cache)])  # the model loads here, outside the timing
    heard, seconds = [], []
    for r in requests:
        for voice, wpm in VOICES:
            t0 = time.perf_counter()
            (feats,) = audio.encode([speak(r["text"], voice, wpm, cache)])
            seconds.append(time.perf_counter() - t0)
            heard.append((r, voice, feats))
    return heard, seconds


def searched_hits(
    requests: list[dict], retriever: Any, heard: list[tuple[dict, str, Any]], tau: float
) -> tuple[dict[str, float], list[str]]:
    """Spoken hit@1/5/10 when each clip's words heard at least `tau` likely are searched (as the
    retriever searches a transcript), and the clips whose searched text differs from what was heard."""
    from fusionrec.encoders.audio import confident_text

    per: dict[str, dict] = {}
    dropped = []
    for r, voice, feats in heard:
        text = confident_text(feats.words, tau, feats.transcript) if tau > 0 else feats.transcript
        if text != feats.transcript:
            dropped.append(f"{r['id']} {voice}: {feats.transcript!r} -> {text!r}")
        rec = per.setdefault(r["id"], {**{f"hit@{k}": 0.0 for k in KS}})
        for key, value in hits(ranked(retriever, text), r["targets"]).items():
            rec[key] += value / len(VOICES)
    row = table({"systems": {"early": per}}, requests)["early"]
    return {k: row[k] for k in ("hit@1", "hit@5", "hit@10")}, dropped


def confidence_grid(
    requests: list[dict], home: Path, overrides: Sequence[str], cache: Path
) -> dict[str, Any]:
    """Spoken tuning half at each ``models.speech_min_word_prob``: Whisper hears each clip once with word
    probabilities; each row searches the words heard at least that likely (as the retriever searches a
    transcript: the early search of the text). ``seconds_p50``: transcription with word probabilities."""
    from fusionrec.evaluation.metrics import latency_summary
    from fusionrec.retrieval.search import Retriever

    found = {"early": Retriever(config(home, [*overrides, *FUSIONS["early"]]))}
    typed = table(typed_run(requests, found), requests)["early"]
    out: dict[str, Any] = {"typed early": {k: typed[k] for k in ("hit@1", "hit@5", "hit@10")}}
    heard, seconds = heard_clips(requests, home, overrides, cache)
    for tau in MIN_WORD_PROB:
        row, dropped = searched_hits(requests, found["early"], heard, tau)
        out[f"min_word_prob={tau}"] = {**row, "clips_changed": len(dropped), "changed": dropped}
        print(f"min_word_prob={tau}", json.dumps(row), len(dropped), flush=True)
    out["seconds_p50"] = latency_summary(seconds)["p50_s"]
    return out


def lexical_grid(
    requests: list[dict], home: Path, overrides: Sequence[str], cache: Path
) -> dict[str, Any]:
    """Typed and spoken tuning half at each ``retrieval.lexical_weight`` (rows) and, spoken, with the
    whole transcript or only its confident words (``models.speech_min_word_prob`` 0 and 0.2): each
    fusion strategy typed, the early search spoken. Whisper hears each clip once."""
    from fusionrec.retrieval.search import Retriever

    heard, _ = heard_clips(requests, home, overrides, cache)
    out: dict[str, Any] = {}
    for weight in LEXICAL_WEIGHT:
        lexical = [*overrides, f"retrieval.lexical_weight={weight}"]
        found = {name: Retriever(config(home, [*lexical, *over])) for name, over in FUSIONS.items()}
        typed = table(typed_run(requests, found), requests)
        row: dict[str, Any] = {f"typed {name}": {k: typed[name][k] for k in ("hit@1", "hit@5", "hit@10")}
                               for name in FUSIONS}  # fmt: skip
        for tau in (0.0, 0.2):
            row[f"spoken early, min_word_prob={tau}"] = searched_hits(requests, found["early"], heard, tau)[0]
        out[f"lexical_weight={weight}"] = row
        print(f"lexical_weight={weight}", json.dumps(row), flush=True)
    return out


def decodes(models_dir: Path) -> dict[str, list[str]]:
    """The Whisper decodes whose transcripts --tune hypotheses fuses (the speech grid's best three)."""
    base, tiny = models_dir / "whisper" / "base.pt", models_dir / "whisper" / "tiny.en.pt"
    return {
        "base greedy": [f"models.speech={base}", "models.speech_beam_size=1"],
        "base beam=5": [f"models.speech={base}", "models.speech_beam_size=5"],
        "tiny.en greedy": [f"models.speech={tiny}", "models.speech_beam_size=1"],
    }


def fused(lists: Sequence[Sequence[tuple[str, float]]], how: str) -> list[str]:
    """One ranking from several searches' (id, score) lists: summed reciprocal ranks (``rrf``, k=0 as
    ``retrieval.rrf_k``) or summed z-scored scores (``z``, the prior's `standardise`); an item a list
    lacks gets its lowest value."""
    from fusionrec.retrieval.collaborative.prior import standardise

    total: dict[str, float] = {}
    ids = {i for hits in lists for i, _ in hits}
    for hits in lists:
        if how == "rrf":
            value = {i: 1.0 / (1 + rank) for rank, (i, _) in enumerate(hits)}
            floor = 0.0
        else:
            z = standardise([x for _, x in hits])
            value, floor = {i: float(v) for (i, _), v in zip(hits, z, strict=True)}, float(z.min())
        for i in ids:
            total[i] = total.get(i, 0.0) + value.get(i, floor)
    return sorted(total, key=lambda i: -total[i])


def hypotheses_grid(requests: list[dict], home: Path, overrides: Sequence[str], cache: Path) -> dict[str, Any]:
    """Several transcripts per clip (`decodes`), each searched by the early retriever as the clip's audio
    attachment, then fused (`fused`); every single decode, pair and the three, by rrf and by z."""
    from itertools import combinations

    from fusionrec.evaluation.metrics import latency_summary
    from fusionrec.retrieval.search import Retriever
    from fusionrec.types import Attachment

    early = [*overrides, *FUSIONS["early"]]
    found = {"early": Retriever(config(home, early))}
    typed = table(typed_run(requests, found), requests)["early"]
    out: dict[str, Any] = {"typed early": {k: typed[k] for k in ("hit@1", "hit@5", "hit@10")}}
    lists: dict[str, dict[tuple[str, str], list[tuple[str, float]]]] = {}
    for name, over in decodes(config(home, []).models_dir).items():
        ret = Retriever(config(home, [*early, *over]))
        ret.retrieve("", [Attachment("audio", speak(WARM_UP, *VOICES[0], cache))], k=1)  # models load here
        lists[name], seconds = {}, []
        for r in requests:
            for voice, wpm in VOICES:
                t0 = time.perf_counter()
                got = ret.retrieve("", [Attachment("audio", speak(r["text"], voice, wpm, cache))])
                seconds.append(time.perf_counter() - t0)
                lists[name][(r["id"], voice)] = [(c.item.id, float(c.score)) for c in got]
        out[f"{name} seconds_p50"] = latency_summary(seconds)["p50_s"]
    names = list(lists)
    combos = [(n,) for n in names] + list(combinations(names, 2)) + [tuple(names)]
    for combo in combos:
        for how in ("rrf", "z") if len(combo) > 1 else ("",):
            row = {f"hit@{k}": 0.0 for k in KS}
            for r in requests:
                for voice, _ in VOICES:
                    got = [lists[n][(r["id"], voice)] for n in combo]
                    ids = fused(got, how) if len(got) > 1 else [i for i, _ in got[0]]
                    for key, value in hits(ids[: max(KS)], r["targets"]).items():
                        row[key] += value / (len(requests) * len(VOICES))
            label = " + ".join(combo) + (f" ({how})" if how else "")
            out[label] = row
            print(f"{label:55s} {row['hit@1']:.3f} {row['hit@5']:.3f} {row['hit@10']:.3f}", flush=True)
    return out


def tune(args: argparse.Namespace, requests: list[dict], home: Path) -> dict[str, Any]:
    """The grids on the tuning half; each row: hit@1/5/10 (spoken: + WER, seconds per request)."""
    from fusionrec.evaluation.metrics import latency_summary
    from fusionrec.retrieval.search import Retriever

    out: dict[str, Any] = {}
    if args.tune == "correction":
        return correction_grid(requests, home, args.overrides, Path(args.cache))
    if args.tune == "hypotheses":
        return hypotheses_grid(requests, home, args.overrides, Path(args.cache))
    if args.tune == "confidence":
        return confidence_grid(requests, home, args.overrides, Path(args.cache))
    if args.tune == "lexical":
        return lexical_grid(requests, home, args.overrides, Path(args.cache))
    if args.tune == "fusion":
        for label, over in fusion_grid().items():
            found = {"early": Retriever(config(home, over))}
            row = table(typed_run(requests, found), requests)["early"]
            out[label] = {k: row[k] for k in ("hit@1", "hit@5", "hit@10")}
            print(
                f"{label:45s} {out[label]['hit@1']:.3f} {out[label]['hit@5']:.3f} {out[label]['hit@10']:.3f}",
                flush=True,
            )
    else:
        found = {"early": Retriever(config(home, FUSIONS["early"]))}
        typed = table(typed_run(requests, found), requests)["early"]
        out["typed early"] = {k: typed[k] for k in ("hit@1", "hit@5", "hit@10")}
        for label, over in speech_grid(config(home, []).models_dir).items():
            run = spoken_run(requests, found, home, over, Path(args.cache), all_systems=False)
            row = table(run, requests)["early"]
            out[label] = {**{k: row[k] for k in ("hit@1", "hit@5", "hit@10")}, "wer": run["wer"],
                          "p50_s": latency_summary(run["seconds"])["p50_s"]}  # fmt: skip
            print(label, json.dumps(out[label]), flush=True)
    return out


# --- output --------------------------------------------------------------------------------------
def print_tables(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title=f"Requests, {result['half']} half (n={result['n']}): hit@1 / hit@5 / hit@10")
    for col in ("system", "typed @1", "@5", "@10", "spoken @1", "@5", "@10"):
        t.add_column(col, justify="left" if col == "system" else "right")
    spoken = result.get("spoken", {})
    for name, row in result["typed"].items():
        s = spoken.get(name)
        cells = [f"{row[f'hit@{k}']:.3f}" for k in KS] + [f"{s[f'hit@{k}']:.3f}" if s else "" for k in KS]
        t.add_row(name, *cells)
    console.print(t)
    if "speech" in result:
        sp, lat = result["speech"], result["latency"]
        console.print(
            f"WER {sp['wer']:.3f}; spoken request p50 {lat['spoken']['p50_s']:.2f} s "
            f"(p95 {lat['spoken']['p95_s']:.2f} s) vs typed p50 {lat['typed']['p50_s'] * 1000:.0f} ms"
        )
    for name, d in result["paired"]["fusion_minus_best_block"].items():
        console.print(f"{name} - {result['paired']['best_block']} hit@5: {d['hit@5'][0]:+.3f} "
                      f"[{d['hit@5'][1]:+.3f}, {d['hit@5'][2]:+.3f}]")  # fmt: skip
    for name, d in result["paired"]["spoken_minus_typed"].items():
        console.print(
            f"spoken - typed, {name}, hit@5: {d['hit@5'][0]:+.3f} [{d['hit@5'][1]:+.3f}, {d['hit@5'][2]:+.3f}]"
        )


def summary_section(result: dict[str, Any]) -> dict[str, Any]:
    def short(rows: dict) -> dict:
        return {n: {k: round(rows[n][k], 4) for k in ("hit@1", "hit@5", "hit@10")} for n in rows}

    section = {"n": result["n"], "half": result["half"], "typed": short(result["typed"])}
    if "spoken" in result:
        section["spoken"] = short(result["spoken"])
        section["wer"] = round(result["speech"]["wer"], 4)
        section["speech_latency_p50_s"] = round(result["latency"]["spoken"]["p50_s"], 3)
    section["command"] = result["command"]
    return section


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", default=str(REQUESTS))
    ap.add_argument("--half", choices=[*HALVES, "all"], default="report")
    ap.add_argument(
        "--home", default=str(REPO / ".fusionrec"), help="home with the ingested catalog and models"
    )
    ap.add_argument("--cache", default=str(CACHE), help="where the espeak-ng clips are kept (not the repo)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N requests of the half (smoke runs)")
    ap.add_argument("--no-speech", action="store_true", help="typed requests only")
    ap.add_argument(
        "--tune", choices=["fusion", "speech", "correction", "hypotheses", "confidence", "lexical"],
        help="run a tuning grid on the tuning half"
    )
    ap.add_argument("--languages", action="store_true", help="only print what speech hears of LANGUAGES")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--summary", default="", help="also write the 'requests' section of this summary file")
    ap.add_argument("--out", default="")
    ap.add_argument(
        "overrides", nargs="*", help="section.key=value config overrides (e.g. models.speech=...)"
    )
    args = ap.parse_args()
    env.configure(offline=True)
    import torch

    torch.set_num_threads(args.threads)
    for tool in ("espeak-ng", "ffmpeg"):
        if not args.no_speech and shutil.which(tool) is None:
            print(
                f"error: {tool} is not installed (apt-get install {tool}), or pass --no-speech",
                file=sys.stderr,
            )
            return 2
    try:
        requests = load_requests(Path(args.requests))
        config(Path(args.home), args.overrides)
    except (OSError, ValueError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.languages:
        for row in language_check(Path(args.home), args.overrides, Path(args.cache)):
            print(json.dumps(row, ensure_ascii=False))
        return 0
    half = "tune" if args.tune else args.half
    chosen = [r for r in requests if half == "all" or r["half"] == half][: args.limit or None]
    home = Path(args.home)
    command = " ".join([".venv/bin/python", "benchmarks/requests.py", *sys.argv[1:]])
    started = time.perf_counter()
    if args.tune:
        grid = tune(args, chosen, home)
        out = Path(args.out or REPO / "benchmarks" / "results" / "requests_tune.json")
        done = json.loads(out.read_text()) if out.is_file() else {}
        done[args.tune] = {"n": len(chosen), "half": half, "grid": grid, "command": command,
                           "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(done, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {out}")
        return 0
    found = systems(home, args.overrides)
    typed = typed_run(chosen, found)
    spoken = None
    if not args.no_speech:
        speech = [o for o in args.overrides if o.startswith("models.")]
        spoken = spoken_run(chosen, found, home, speech, Path(args.cache), all_systems=True)
    cfg = config(home, args.overrides)
    result: dict[str, Any] = {
        "half": half,
        "n": len(chosen),
        "command": command,
        "voices": [f"{v} {wpm} wpm" for v, wpm in VOICES],
        "retrieval": {
            k: copy.deepcopy(getattr(cfg.retrieval, k)) for k in ("fusion", "weights", "text_blocks", "rrf_k")
        },
        "typed": table(typed, chosen),
        "paired": comparisons(typed, spoken, chosen),
        "latency": latency(typed, spoken),
        "machine": {"cpus": os.cpu_count(), "load_avg": list(os.getloadavg()), "torch_threads": args.threads},
    }
    if spoken is not None:
        from fusionrec.models import registry

        result["spoken"] = table(spoken, chosen)
        m = cfg.models
        result["speech"] = {
            "model": Path(registry.source(cfg, "speech")).name,
            "beam_size": m.speech_beam_size, "temperatures": m.speech_temperatures,
            "prompt": m.speech_prompt, "language": m.speech_language, "wer": spoken["wer"],
            "speech_correction": cfg.retrieval.speech_correction, "wer_searched": spoken["wer_searched"],
            "same_as_typed_transcript": spoken["same_as_typed_transcript"], "clips": spoken["clips"],
        }  # fmt: skip
    result["per_request"] = {
        r["id"]: {"typed_early": typed["systems"]["early"][r["id"]]["ids"], "targets": r["targets"]}
        for r in chosen
    }
    result["seconds"] = round(time.perf_counter() - started, 1)
    print_tables(result)
    out = Path(args.out or REPO / "benchmarks" / "results" / "requests.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    if args.summary:
        if half != "report":
            print("error: --summary reports the report half only", file=sys.stderr)
            return 2
        from fusionrec.evaluation.summary import write_section

        write_section(Path(args.summary), "requests", summary_section(result))
        print(f"wrote the 'requests' section of {args.summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
