"""Plain dataclasses shared by every layer (encoders, retrieval, agent, finetune, evaluation, ui)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Modality = Literal["text", "image", "audio", "video", "item"]


@dataclass
class Item:
    """One catalog entry. `media` maps a modality ("image", "audio", "video") to a file path."""

    id: str
    title: str
    year: int | None = None
    genres: list[str] = field(default_factory=list)
    text: str = ""  # overview / description
    tags: list[str] = field(default_factory=list)  # free tags and auto-labels
    media: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def facts(self) -> str:
        """The item's facts as one block of text (what explanations may cite)."""
        parts = [f"Title: {self.title}"]
        if self.year:
            parts.append(f"Year: {self.year}")
        if self.genres:
            parts.append("Genres: " + ", ".join(self.genres))
        if self.tags:
            parts.append("Tags: " + ", ".join(self.tags))
        if self.text:
            parts.append(f"Overview: {self.text}")
        return "\n".join(parts)


@dataclass
class Interaction:
    user: str
    item: str
    rating: float
    timestamp: int


@dataclass
class Attachment:
    """A user upload. `validated` is set once the file was checked (type, size, decodable)."""

    kind: Literal["image", "audio", "video"]
    path: Path
    validated: bool = False
    error: str = ""


@dataclass
class Candidate:
    item: Item
    score: float  # fused retrieval score
    modality_scores: dict[str, float] = field(default_factory=dict)


@dataclass
class Ranking:
    """Candidates in ranked order; `scores` aligned with `candidates`."""

    candidates: list[Candidate]
    scores: list[float]
    method: str  # "verbalizer" | "generative" | "retrieval" | baseline name
    raw_output: str = ""
    invalid: list[str] = field(default_factory=list)  # generative answers that matched no candidate


@dataclass
class Explanation:
    item_id: str
    text: str
    grounded: bool
    problems: list[str] = field(default_factory=list)


@dataclass
class Turn:
    role: Literal["user", "assistant"]
    text: str
    attachments: list[Attachment] = field(default_factory=list)


@dataclass
class DialogueState:
    """Everything one conversation remembers between turns."""

    turns: list[Turn] = field(default_factory=list)
    include_genres: set[str] = field(default_factory=set)
    exclude_genres: set[str] = field(default_factory=set)
    year_min: int | None = None
    year_max: int | None = None
    shown: list[str] = field(default_factory=list)  # item ids already shown, in order
    liked: list[str] = field(default_factory=list)
    disliked: list[str] = field(default_factory=list)
    last_ranking: list[str] = field(default_factory=list)  # item ids of the last answer, ranked
