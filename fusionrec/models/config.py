"""Which model serves each role, and where it runs."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

SPEECH_PROMPT = "Movie requests: titles, genres, actors, plots, moods."  # the domain prompt the tuning tried


@dataclass
class ModelsConfig:
    profile: str = "offline"  # offline | online | tiny: picks the default source of every role
    llm: str = ""  # hub name or local folder; "" = the profile's default
    text_embedder: str = ""  # sentence-transformers name or folder; "" = profile default
    image_encoder: str = ""  # "open_clip:ARCH/TAG", "timm:folder" or a folder; "" = profile default
    # timm only; written by `fusionrec finetune --recipe poster_projector`; changing it changes image_text (re-ingest)
    poster_projector: str = ""  # poster -> text-space projector (safetensors); "" = the ImageNet-label bridge
    speech: str = ""  # whisper name ("base") or checkpoint path; "" = profile default
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "float32"  # float32 | bfloat16 | float16 (LLM weights)
    # images with more pixels are refused from their header, before any decode (see fusionrec.media);
    # 40 MP is 120 MB decoded as RGB. Applied process-wide by fusionrec.media.set_max_image_megapixels.
    max_image_megapixels: float = 40.0
    # Whisper decoding of spoken requests (encoders.audio); chosen on the tuning half of
    # benchmarks/requests.jsonl (docs/results/requests.md): greedy and no prompt heard best there
    speech_beam_size: int = 1  # beam width at temperature 0 (1 = greedy), 1 to 16
    speech_temperatures: list[float] = field(
        default_factory=lambda: [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    )  # next temperature tried when a decode looks broken (repetitive, unlikely); [0.0] = no fallback
    speech_prompt: str = ""  # initial prompt, e.g. SPEECH_PROMPT naming the domain ("" = none), <= 200 chars
    speech_language: str = ""  # "" = detected per clip; else a Whisper language code (en, de, zh, ...)
    # words heard with a lower probability are not searched (0 = off: the whole transcript). Off since the
    # lexical re-scoring (retrieval.lexical_weight): the rare words it matches are often the unsure ones
    # (tuning half: docs/results/requests.md)
    speech_min_word_prob: float = 0.0

    def check(self) -> None:
        """Range-check the values and apply the image pixel limit process-wide (called at config load)."""
        from fusionrec.media import set_max_image_megapixels

        if not 1 <= self.speech_beam_size <= 16:
            raise ValueError(
                f"models.speech_beam_size={self.speech_beam_size!r}: expected a number from 1 to 16"
            )
        temps = self.speech_temperatures
        if not temps or temps != sorted(temps) or not all(math.isfinite(t) and 0 <= t <= 1 for t in temps):
            raise ValueError(f"models.speech_temperatures={temps!r}: expected increasing numbers from 0 to 1")
        if not 0 <= self.speech_min_word_prob < 1:
            raise ValueError(
                f"models.speech_min_word_prob={self.speech_min_word_prob!r}: expected a number from 0 to below 1"
            )
        if len(self.speech_prompt) > 200:
            raise ValueError(f"models.speech_prompt: {len(self.speech_prompt)} characters (at most 200)")
        if self.speech_language and not re.fullmatch(r"[a-z]{2,3}", self.speech_language):
            raise ValueError(
                f'models.speech_language={self.speech_language!r}: expected "" or a code like en, de, zh'
            )
        try:
            set_max_image_megapixels(self.max_image_megapixels)
        except ValueError:
            raise ValueError(f"models.max_image_megapixels must be > 0 (got {self.max_image_megapixels!r})") from None
