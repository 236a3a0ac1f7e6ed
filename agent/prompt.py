"""Prompt building: templates from agent/prompts/*.txt, the ranking prompt and the explanation prompt.

The ranking prompt holds the system rules, the dialogue so far (trimmed from the oldest turn to
fit a token budget), the user's constraints, the user's attachments as soft tokens and up to 20
candidates labelled A, B, C ..., each a hybrid item token (LLaRA): the title text followed by a
slot for the item's projected embedding. Item text is DATA: it is sanitised (no control tokens, no
slot markers, no delimiter tags) and wrapped in <data> ... </data>, and the rules say so.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.agent import softtokens
from fusionrec.agent.config import SCORINGS
from fusionrec.types import Candidate, DialogueState, Item, Turn

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
LABELS = "ABCDEFGHIJKLMNOPQRST"
SCORE_WORD = " yes"  # pointwise scoring: the logit of this token at each candidate's item token
MAX_CANDIDATES = len(LABELS)
SECTIONS = (
    "system",
    "rank_request",
    "answer_prefix",
    "candidate",
    "attachment",
    "explain_system",
    "explain_request",
    "explain_prefix",
    "explain_fallback",
)
_TAGS = re.compile(r"</?\s*(data|facts)\s*>", re.IGNORECASE)
_ARTICLES = {"image": "an", "audio": "an", "video": "a"}


class TemplateError(ValueError):
    """A prompt template file is missing, lacks a section, or uses an unknown placeholder."""


@dataclass
class Template:
    """A prompt template: named sections of text with {placeholders}."""

    name: str
    path: Path
    sections: dict[str, str]

    def fill(self, section: str, **values: Any) -> str:
        text = self.sections[section]
        try:
            return text.format(**values)
        except (KeyError, IndexError, ValueError) as exc:
            raise TemplateError(f"{self.path}: section '{section}': bad placeholder {exc}") from None


def template_names() -> list[str]:
    """Names of the templates shipped in agent/prompts/."""
    return sorted(p.stem for p in PROMPTS_DIR.glob("*.txt"))


@lru_cache(maxsize=16)
def load_template(name: str) -> Template:
    """A template by name (agent/prompts/NAME.txt) or by path to a .txt file."""
    path = Path(name)
    if not (path.suffix == ".txt" and path.is_file()):
        path = PROMPTS_DIR / f"{name}.txt"
    if not path.is_file():
        raise TemplateError(f"prompt template {name!r} not found (known: {', '.join(template_names())})")
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
            sections[current] = []
        elif line.startswith("#"):
            continue
        elif current is not None:
            sections[current].append(line)
    missing = [s for s in SECTIONS if s not in sections]
    if missing:
        raise TemplateError(f"{path}: missing section(s) {', '.join(missing)}")
    return Template(path.stem, path, {k: "\n".join(v).strip("\n") for k, v in sections.items()})


# --- text helpers ----------------------------------------------------------------------------------
def data_text(text: str, tokenizer: Any = None, max_chars: int = 0) -> str:
    """Third-party text made safe to embed: no control tokens, slot markers or delimiter tags."""
    text = softtokens.sanitize(html.unescape(text or ""), tokenizer)
    text = _TAGS.sub("", text)
    text = re.sub(r"\s+", " ", text).strip()
    if max_chars and len(text) > max_chars:
        cut = text[:max_chars].rsplit(" ", 1)[0]
        text = (cut or text[:max_chars]).rstrip(" ,;:") + " ..."
    return text


def chat_text(tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
    """The tokenizer's chat template rendered as text (a plain fallback for models without one)."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )
    parts = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    if add_generation_prompt:
        parts.append("Assistant:")
    return "\n\n".join(parts) + ("" if add_generation_prompt else "\n")


def labels(n: int) -> list[str]:
    """Single-letter labels for n candidates (A, B, C ...); at most 20."""
    if not 0 < n <= MAX_CANDIDATES:
        raise ValueError(f"between 1 and {MAX_CANDIDATES} candidates can be ranked, got {n}")
    return list(LABELS[:n])


def label_token_ids(tokenizer: Any, names: Sequence[str], answer_prefix: str) -> tuple[str, list[int]]:
    """(form, ids): the first form ("{} " or "{}") in which every label is ONE token after the prefix.

    After a prefix ending in a word ("Ranking:") the label comes as " A"; at the start of a line as "A".
    """
    context = answer_prefix if answer_prefix else "\n"
    forms = ["{}", " {}"] if context[-1].isspace() else [" {}", "{}"]
    base = tokenizer.encode(context, add_special_tokens=False)
    for form in forms:
        ids = []
        for name in names:
            full = tokenizer.encode(context + form.format(name), add_special_tokens=False)
            if len(full) != len(base) + 1 or full[: len(base)] != base:
                break
            ids.append(full[-1])
        else:
            if len(set(ids)) == len(ids):
                return form, ids
    raise ValueError(f"the tokenizer has no single-token form for the labels {list(names)} after {context!r}")


def constraints_text(state: DialogueState | None, titles: dict[str, str] | None = None) -> str:
    """The dialogue's accumulated constraints as one line ("none" when there are none)."""
    if state is None:
        return "none"
    titles = titles or {}
    parts = []
    if state.include_genres:
        parts.append("genres wanted: " + ", ".join(sorted(state.include_genres)))
    if state.exclude_genres:
        parts.append("genres NOT wanted: " + ", ".join(sorted(state.exclude_genres)))
    years = years_text(state)
    if years:
        parts.append(years)
    if state.liked:
        parts.append("liked: " + ", ".join(titles.get(i, i) for i in state.liked[-3:]))
    if state.disliked:
        parts.append("disliked: " + ", ".join(titles.get(i, i) for i in state.disliked[-3:]))
    return "; ".join(parts) or "none"


def wanted_text(state: DialogueState) -> str:
    """What the user asked for, in English and positive terms only ("Comedy, Sci-Fi films years 1990 to
    1999"): the search text of a non-English turn (refused genres are filters, not words to match)."""
    if not state.include_genres and state.year_min is None and state.year_max is None:
        return ""
    words = [", ".join(sorted(state.include_genres)), "films"] if state.include_genres else ["films"]
    return " ".join([*words, years_text(state)]).strip()


def years_text(state: DialogueState) -> str:
    """The year constraint in words ("years 1990 to 1999", "from 1990 or later"; "" when none)."""
    if state.year_min is not None and state.year_max is not None:
        return f"years {state.year_min} to {state.year_max}"
    if state.year_min is not None:
        return f"from {state.year_min} or later"
    if state.year_max is not None:
        return f"from {state.year_max} or earlier"
    return ""


# --- the ranking prompt ------------------------------------------------------------------------------
@dataclass
class SoftInput:
    """A raw vector for one soft-token slot and the projector that maps it (its modality)."""

    modality: str
    vector: np.ndarray


@dataclass
class AttachmentInput:
    """A user attachment for the prompt: its kind, its vector (None = text only), and short details."""

    kind: str
    vector: np.ndarray | None
    details: str = ""  # e.g. the transcript or the image's auto-labels


@dataclass
class RankPrompt:
    """A ranking prompt ready for the LLM: ids with slots, the candidates and their label tokens."""

    encoded: softtokens.EncodedPrompt
    candidates: list[Candidate]
    labels: list[str]
    label_ids: list[int]
    label_form: str
    soft_inputs: dict[str, SoftInput] = field(default_factory=dict)
    dropped_turns: int = 0  # dialogue turns left out to fit the token budget
    overview_chars: int = 0  # overview length used in the candidate list (after shrinking)
    template: str = "default"
    scoring: str = "listwise"  # listwise: label logits at the answer; pointwise: SCORE_WORD at each item
    score_positions: list[int] = field(default_factory=list)  # pointwise: each candidate's item token
    score_id: int = -1  # pointwise: the token id of SCORE_WORD


def _candidate_lines(
    template: Template,
    tokenizer: Any,
    candidates: Sequence[Candidate],
    names: Sequence[str],
    item_vectors: dict[str, np.ndarray],
    overview_chars: int,
    pointwise: bool = False,
) -> tuple[str, dict[str, SoftInput]]:
    lines, soft = [], {}
    for name, cand in zip(names, candidates, strict=True):
        item = cand.item
        vec = item_vectors.get(item.id)
        marker = ""
        if vec is not None:
            key = f"item:{name}"
            marker = softtokens.slot(key)
            soft[key] = SoftInput("item", np.asarray(vec, dtype=np.float32))
        if pointwise:  # scored at its hybrid item token (or at the end of its title when text only)
            marker += softtokens.mark(f"score:{name}")
        lines.append(
            template.fill(
                "candidate",
                label=name,
                title=data_text(item.title, tokenizer, 120),
                year=f" ({item.year})" if item.year else "",
                item=marker,
                genres=data_text(", ".join(item.genres), tokenizer) or "unknown genre",
                overview=data_text(item.text, tokenizer, overview_chars) if overview_chars > 0 else "",
            )
        )
    return "\n".join(lines), soft


def _attachment_lines(
    template: Template, tokenizer: Any, attachments: Sequence[AttachmentInput]
) -> tuple[str, dict]:
    lines, soft = [], {}
    for i, att in enumerate(attachments):
        marker = ""
        if att.vector is not None:
            key = f"{att.kind}:{i}"
            marker = softtokens.slot(key)
            soft[key] = SoftInput(att.kind, np.asarray(att.vector, dtype=np.float32))
        details = data_text(att.details, tokenizer, 300)
        lines.append(
            template.fill(
                "attachment",
                kind=att.kind,
                article=_ARTICLES.get(att.kind, "a"),
                soft=marker,
                details=f" <data>{details}</data>" if details else "",
                details_text=details,
            )
        )
    return "".join(line + "\n" for line in lines), soft


def build_rank_prompt(
    tokenizer: Any,
    template: Template | str,
    request: str,
    candidates: Sequence[Candidate],
    *,
    history: Sequence[Turn] = (),
    constraints: str = "none",
    item_vectors: dict[str, np.ndarray] | None = None,
    attachments: Sequence[AttachmentInput] = (),
    max_tokens: int = 1536,
    overview_chars: int = 200,
    placeholder: int | None = None,
    scoring: str = "listwise",
) -> RankPrompt:
    """The ranking prompt; history is dropped oldest-first, then overviews shortened, to fit `max_tokens`.

    `scoring="pointwise"` also records where each candidate is named — its hybrid item token, or the
    end of its title when it is text only — and the model scores a candidate by the logit of
    SCORE_WORD there (it has seen the request, the history and that item, none of the later ones).
    """
    if scoring not in SCORINGS:
        raise ValueError(f"scoring={scoring!r}: expected one of {', '.join(SCORINGS)}")
    tpl = load_template(template) if isinstance(template, str) else template
    names = labels(len(candidates))
    answer_prefix = tpl.sections["answer_prefix"]
    form, label_ids = label_token_ids(tokenizer, names, answer_prefix)
    pid = softtokens.placeholder_id(tokenizer) if placeholder is None else placeholder
    att_text, att_soft = _attachment_lines(tpl, tokenizer, attachments)
    turns = [t for t in history if t.text.strip()]
    chars = overview_chars
    dropped = 0
    while True:
        cand_text, cand_soft = _candidate_lines(
            tpl, tokenizer, candidates, names, item_vectors or {}, chars, scoring == "pointwise"
        )
        user = tpl.fill(
            "rank_request",
            request=data_text(request, tokenizer) or "(no text; see the attachment)",
            attachments=att_text,
            constraints=constraints,
            candidates=cand_text,
            n=len(candidates),
            example="<letter>, <letter>, ...",
        )
        messages = [{"role": "system", "content": tpl.sections["system"]}]
        messages += [{"role": t.role, "content": data_text(t.text, tokenizer, 500)} for t in turns]
        messages.append({"role": "user", "content": user})
        text = chat_text(tokenizer, messages) + answer_prefix
        encoded = softtokens.encode(tokenizer, text, pid)
        if len(encoded) <= max_tokens:
            break
        if turns:
            turns = turns[1:]
            dropped += 1
        elif chars > 0:
            chars = chars // 2 if chars > 40 else 0
        else:
            break  # nothing left to trim; the caller's model may still fit it
    return RankPrompt(
        encoded=encoded,
        candidates=list(candidates),
        labels=names,
        label_ids=label_ids,
        label_form=form,
        soft_inputs={**att_soft, **cand_soft},
        dropped_turns=dropped,
        overview_chars=chars,
        template=tpl.name,
        scoring=scoring,
        score_positions=list(encoded.marks),
        score_id=tokenizer.encode(SCORE_WORD, add_special_tokens=False)[-1] if scoring == "pointwise" else -1,
    )


# --- the explanation prompt ---------------------------------------------------------------------------
def explain_prompt(
    tokenizer: Any, template: Template | str, item: Item, request: str, language: str = ""
) -> tuple[str, str]:
    """(prompt text ending with the answer's opening words, those opening words); `language` (a code
    such as "de", "" = English) asks for the answer in that language and opens it with the title only."""
    from fusionrec.agent.language import ENGLISH, NAMES

    tpl = load_template(template) if isinstance(template, str) else template
    title = data_text(item.title, tokenizer, 120)
    facts = "\n".join(data_text(line, tokenizer, 600) for line in item.facts().splitlines())
    user = tpl.fill(
        "explain_request",
        request=data_text(request, tokenizer, 500) or "(no text)",
        facts=facts,
        title=title,
    )
    system, prefix = tpl.sections["explain_system"], tpl.fill("explain_prefix", title=title)
    if language and language != ENGLISH:  # the template's opening words are English: open with the title
        system += f" Write the explanation in {NAMES.get(language, language)}."
        prefix = f"{title}: "
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    return chat_text(tokenizer, messages) + prefix, prefix
