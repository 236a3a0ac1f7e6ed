"""The Agent: one object that serves the REPL, the UI and the evaluation.

`Agent(cfg).respond(state, turn)` yields Events as the turn proceeds:
``retrieved`` (candidates), ``ranked`` (the Ranking, the items shown and, on a conversation-prior turn
(`Agent.chat_task`), the ``views`` of `dialogue_views` with the candidates' ``ids`` in prompt order),
``explanation_token``
(streamed text pieces), ``explanation`` (the checked Explanation; it REPLACES the streamed text,
which may have failed the fact check), ``message`` (the reply text), ``error`` (a clear reply; the
session goes on) and finally ``done`` (timings). Bad turns (empty, oversized, unreadable
attachment) and failed ones (an unreachable store, ...) get an ``error`` event naming what failed
and leave the state as it was; a failure's traceback goes to the log file only.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from fusionrec import logs
from fusionrec.agent import dialogue
from fusionrec.agent.adapter import SHIPPED_ADAPTER, AgentError, effective_config, load_adapter
from fusionrec.agent.checkpoint import (
    RECIPE_FILE,
    read_adapter_recipe,
    trained_to_explain,
)
from fusionrec.agent.config import RANKERS
from fusionrec.agent.evidence import TurnContext, prior_vectors
from fusionrec.agent.explain import ExplainResult, GroundedExplainer
from fusionrec.agent.failures import failure_text
from fusionrec.agent.projector import Projectors
from fusionrec.agent.prompt import (
    AttachmentInput,
    RankPrompt,
    build_rank_prompt,
    constraints_text,
    load_template,
    wanted_text,
)
from fusionrec.agent.rank import (
    label_logprobs,
    label_prior,
    ordered_ranking,
    rank_generative,
    rank_verbalizer,
)
from fusionrec.agent.residual import DIALOGUE_RESIDUAL_FILE, Residual, mix
from fusionrec.agent.softtokens import placeholder_id
from fusionrec.agent.titles import Named, TitleFinder
from fusionrec.config import Config
from fusionrec.retrieval.collaborative.bpr import TABLE_FILE, load_table, with_collab
from fusionrec.retrieval.collaborative.conversation import PRIOR_FILE as PRIOR_FILE_CONVERSATION
from fusionrec.retrieval.collaborative.conversation import ConversationPrior
from fusionrec.retrieval.collaborative.prior import PRIOR_FILE, Prior, standardise
from fusionrec.retrieval.store import hidden
from fusionrec.types import Attachment, Candidate, DialogueState, Item, Ranking, Turn

if TYPE_CHECKING:
    from fusionrec.retrieval.search import QueryVectors, Upload

log = logging.getLogger(__name__)

EventKind = Literal["retrieved", "ranked", "explanation_token", "explanation", "message", "error", "done"]
EVENT_KINDS = ("retrieved", "ranked", "explanation_token", "explanation", "message", "error", "done")


@dataclass
class Event:
    """One step of a turn. `payload` is a dict whose keys depend on `kind` (see the module docstring)."""

    kind: EventKind
    payload: dict[str, Any] = field(default_factory=dict)


class Agent:
    """Retrieval + soft-token LLM ranking + grounded explanations, one turn at a time."""

    def __init__(
        self, cfg: Config, retriever: Any = None, llm: tuple[Any, Any] | None = None, dataset: str = ""
    ) -> None:
        """`dataset`: the catalog the candidates come from when it is not the retriever's (ReDial turns
        ranked without a store); an adapter's collaborative vectors are appended only for its own catalog."""
        from fusionrec.models import registry

        settings = effective_config(cfg)  # the caller's cfg is not changed
        self.cfg, self.adapter, self.adapter_note = settings.cfg, settings.adapter, settings.note
        self.from_adapter = settings.from_adapter
        if self.from_adapter:
            where = settings.adapter / RECIPE_FILE if settings.adapter else ""
            log.info("agent settings from the adapter's recipe (%s): %s", where,
                     ", ".join(f"agent.{k}={v!r}" for k, v in self.from_adapter.items()))  # fmt: skip
        acfg = self.cfg.agent
        try:
            acfg.check()  # load_config checks too; a config changed in code (or by an adapter) is checked here
        except ValueError as exc:
            raise AgentError(str(exc)) from None
        self.template = load_template(acfg.template)
        if acfg.torch_threads > 0:
            import torch

            torch.set_num_threads(acfg.torch_threads)
        model, self.tokenizer = llm or registry.load_llm(cfg)
        hidden = int(model.get_input_embeddings().weight.shape[-1])
        self.prior: Prior | None = None
        self.residual: Residual | None = None
        self.conversation: ConversationPrior | None = None  # ReDial turns: the conversational prior ...
        self.dialogue_residual: Residual | None = None  # ... and its residual mix
        self.collab_dataset = ""  # the catalog whose ids the collaborative table holds
        if self.adapter is not None:
            folder = self.adapter
            if not folder.is_dir():
                raise AgentError(f"agent.adapter={acfg.adapter!r}: no such checkpoint folder")
            self.model = load_adapter(model, folder)
            # a ranking-only LoRA degrades free text (docs/results/ml100k.md): explain with the base LLM
            with_adapter = {"adapter": True, "base": False}.get(acfg.explain_with, trained_to_explain(folder))
            self.explainer = self.model if with_adapter else model
            self.projectors = Projectors.load(folder, expect_out_dim=hidden)
            self.collab = load_table(folder / TABLE_FILE)  # collaborative item vectors, if trained with them
            try:
                self.residual = Residual.load(folder)
                self.prior = Prior.load(folder) if (folder / PRIOR_FILE).is_file() else None
                self.dialogue_residual = Residual.load(folder, DIALOGUE_RESIDUAL_FILE)
                self.conversation = ConversationPrior.load(folder)
                self.collab_dataset = read_adapter_recipe(folder).data.dataset or ""
            except ValueError as exc:
                raise AgentError(str(exc)) from None
            if (self.residual is None) != (self.prior is None):
                raise AgentError(f"{folder}: residual.json and prior.json come together (one is missing)")
            if (self.dialogue_residual is None) != (self.conversation is None):
                raise AgentError(
                    f"{folder}: {DIALOGUE_RESIDUAL_FILE} and conversation_prior.json come together (one is missing)"
                )
        else:
            self.model = self.explainer = model
            token_norm = float(model.get_input_embeddings().weight.detach().float().norm(dim=-1).mean())
            self.projectors = Projectors(hidden, seed=acfg.seed, init_norm=token_norm)
            self.collab = {}
        if acfg.chat_prior == "conversation" and self.conversation is None:
            raise AgentError(
                "agent.chat_prior='conversation' needs an adapter trained on ReDial turns "
                f"({DIALOGUE_RESIDUAL_FILE} and {PRIOR_FILE_CONVERSATION}); agent.adapter={acfg.adapter!r} has none"
            )
        device = model.get_input_embeddings().weight.device
        self.projectors.to(device).eval()
        self.trained_kinds = frozenset(self.projectors.keys())  # projectors read from the adapter (trained)
        self.placeholder = placeholder_id(self.tokenizer, acfg.placeholder_token)
        self._retriever = retriever
        self.dataset = dataset
        self._item_vectors: dict[str, np.ndarray] = {}
        self._catalog: tuple[list[str], list[str]] | None = None
        self._priors: dict[int, list[float]] = {}
        self._grounded: GroundedExplainer | None = None
        self._titles: TitleFinder | None = None
        self._covered: bool | None = None  # whether the conversational prior counts this catalog's films

    # --- collaborators ----------------------------------------------------------------------------
    @property
    def retriever(self) -> Any:
        if self._retriever is None:
            from fusionrec.retrieval.search import Retriever

            self._retriever = Retriever(self.cfg)
        return self._retriever

    def catalog(self) -> tuple[list[str], list[str]]:
        """(all catalog titles, all catalog genres), read once from the store's metadata."""
        if self._catalog is None:
            metas = {k: m for k, m in self.retriever.metadatas().items() if not hidden(m)}  # no placeholder "unknown"
            titles = sorted({str(m.get("title", "")) for m in metas.values() if m.get("title")})
            genres = sorted(
                {g.strip() for m in metas.values() for g in str(m.get("genres", "")).split(",") if g.strip()}
            )
            self._catalog = (titles, genres)
            self._titles = TitleFinder((k, str(m["title"])) for k, m in metas.items() if m.get("title"))
        return self._catalog

    def named_films(self, message: str) -> list[Named]:
        """The catalog films `message` names (`agent.titles`)."""
        self.catalog()
        assert self._titles is not None
        return self._titles.find(message)

    def item_vectors(self, items: Sequence[Item]) -> dict[str, np.ndarray]:
        """Each item's text vector (from the store's text block, else encoded), for its hybrid token,
        with the adapter's collaborative vector appended when it was trained with one."""
        missing = [i for i in items if i.id not in self._item_vectors]
        if missing:
            stored = getattr(self._retriever, "block_vectors", None)  # None: no retriever built yet
            found = stored("text", [i.id for i in missing]) if stored is not None else {}
            rest = [i for i in missing if i.id not in found]
            if rest:
                from fusionrec.encoders import load_text_encoder
                from fusionrec.retrieval.ingest import item_text

                vecs = load_text_encoder(self.cfg).encode([item_text(i) for i in rest])
                found.update({i.id: v for i, v in zip(rest, vecs, strict=True)})
            found = {k: np.asarray(v, dtype=np.float32) for k, v in found.items()}
            catalog = self.dataset or getattr(self._retriever, "dataset", "")
            other = bool(catalog and self.collab_dataset and catalog != self.collab_dataset)
            found = with_collab(found, self.collab, lookup=not other)  # another catalog: zeros
            self._item_vectors.update(found)
        return {i.id: self._item_vectors[i.id] for i in items}

    def attachment_inputs(self, uploads: Sequence[Upload]) -> list[AttachmentInput]:
        """Vectors (for soft tokens) and short details (labels, transcript) of the user's uploads, as the
        retriever encoded them for this turn's query (each upload goes through its encoder once).

        `agent.attachment_tokens="trained"` keeps a vector only when the adapter trained that kind's
        projector: an untrained one would put a random vector into the prompt, so the upload reaches
        the LLM as its details (text) only."""
        mode = self.cfg.agent.attachment_tokens
        out = []
        for up in uploads:
            soft = mode == "always" or (mode == "trained" and up.kind in self.trained_kinds)
            details = ""
            if up.kind == "image" and up.labels:
                details = "looks like: " + ", ".join(up.labels)
            elif up.transcript:
                details = f'{"it" if up.kind == "audio" else "its sound"} says: "{up.transcript}"'
            out.append(AttachmentInput(up.kind, up.vector if soft else None, details))
        return out

    # --- ranking ------------------------------------------------------------------------------------
    def build_prompt(
        self,
        request: str,
        candidates: Sequence[Candidate],
        state: DialogueState | None = None,
        attachments: Sequence[AttachmentInput] = (),
        history: Sequence[Turn] = (),
    ) -> RankPrompt:
        """The ranking prompt for these candidates (at most 20) with soft tokens for items and uploads."""
        acfg = self.cfg.agent
        titles = {c.item.id: c.item.title for c in candidates}
        if state is not None and (state.liked or state.disliked):
            with contextlib.suppress(Exception):  # a store without those ids: constraints keep the ids
                titles.update({i.id: i.title for i in self.retriever.items([*state.liked, *state.disliked])})
        return build_rank_prompt(
            self.tokenizer,
            self.template,
            request,
            candidates,
            history=history,
            constraints=constraints_text(state, titles),
            item_vectors=self.item_vectors([c.item for c in candidates]),
            attachments=attachments,
            max_tokens=acfg.max_prompt_tokens,
            overview_chars=acfg.overview_chars,
            placeholder=self.placeholder,
            scoring=acfg.scoring,
        )

    @property
    def ranker_name(self) -> str:
        """Which ranker answers: the adapter (and its prior) or the zero-shot LLM."""
        if self.adapter is None:
            return f"zero-shot LLM ({self.adapter_note})"
        what = f"adapter {self.adapter.name}"
        if self.adapter == SHIPPED_ADAPTER:
            what = f"shipped adapter {self.adapter.name}"
        if self._retriever is not None and self.chat_task() == "conversation":
            return what + ", residual over the conversational prior (ReDial dialogues)"
        if self.prior is not None:
            what += f", residual over the {self.prior.name} prior"
        return what

    def chat_task(self) -> str:
        """How a chat turn is ranked: "conversation" (the adapter's dialogue residual over its conversational
        prior, the path of its ReDial task) or "sequential" (its residual over the collaborative prior, or the
        zero-shot LLM). `agent.chat_prior=auto` picks "conversation" when that prior counts most of the
        catalog's films (a ReDial catalog)."""
        mode = self.cfg.agent.chat_prior
        if self.conversation is None or self.dialogue_residual is None or mode == "sequential":
            return "sequential"
        if mode == "auto" and self._covered is None:
            self._covered = self.conversation.covers(self.retriever.store.all_ids("early")) >= 0.5
        return "conversation" if mode == "conversation" or self._covered else "sequential"

    def prior_picks(self, retrieved: Sequence[Candidate], state: DialogueState) -> list[Candidate]:
        """A conversation-prior turn's candidates: retrieval's first `num_candidates - chat_prior_picks`,
        then the prior's best films among the rest of `retrieved` (`agent.chat_prior_pool` > 0) or among
        the films the turn's filters and exclusions allow (0; their retrieval score: the lowest retrieved,
        as they ranked below it), then the rest of retrieval's."""
        assert self.conversation is not None
        n, pool = min(self.cfg.agent.num_candidates, 20), self.cfg.agent.chat_prior_pool
        keep = list(retrieved[: max(n - self.cfg.agent.chat_prior_picks, 0)])
        wanted, mentioned = n - len(keep), chat_mentions(state)
        found = {c.item.id: c for c in retrieved}
        if pool:
            rest = [c.item.id for c in retrieved[len(keep) : pool]]
            scores = self.conversation.scores_of(mentioned, rest)
            ids = [rest[k] for k in sorted(range(len(rest)), key=lambda k: -scores[k])][:wanted]
        else:
            exclude = [*dialogue.excluded_ids(state), *(c.item.id for c in keep)]
            ranked = self.conversation.ranking(mentioned, exclude=exclude)[:PRIOR_POOL]
            ids = []
            for start in range(0, len(ranked), 200):  # down the prior's order until enough pass the filters
                if len(ids) >= wanted:
                    break
                ids += self.retriever.admissible(ranked[start : start + 200], dialogue.retrieval_filters(state), exclude)
            ids = ids[:wanted]
        floor = min((c.score for c in retrieved[:n]), default=0.0)
        proposed = [found.get(i) or Candidate(item, floor, {"conversation_prior": 1.0})
                    for i, item in zip(ids, self.retriever.items(ids), strict=True)]  # fmt: skip
        taken = set(ids)
        rest = [c for c in retrieved[len(keep) : n] if c.item.id not in taken]
        return [*keep, *proposed, *rest][:n]

    def conversation_scores(
        self, candidates: Sequence[Candidate], state: DialogueState, weight: float | None = None
    ) -> list[float]:
        """The conversational prior's standardised scores of the candidates for the films mentioned so far,
        plus `weight` (default `agent.chat_prior_retrieval_weight`) x their standardised retrieval scores."""
        assert self.conversation is not None
        prior = np.array(self.conversation.scores_of(chat_mentions(state), [c.item.id for c in candidates]))
        weight = self.cfg.agent.chat_prior_retrieval_weight if weight is None else weight
        if weight and len(candidates) > 1:
            prior = prior + weight * standardise([c.score for c in candidates])
        return prior.tolist()

    def score_views(
        self, prompt: RankPrompt, user: str | None = None, history: Sequence[str] = (), retrieval: bool = False
    ) -> dict[str, list[float]]:
        """One forward pass, three views of a residual adapter's scores: "llm" (the verbalizer's
        log-probabilities), "prior" (the collaborative prior, plus the standardised retrieval score
        when `retrieval`) and "hybrid" (their residual mix, what the agent ranks by)."""
        if self.residual is None or self.prior is None or prompt.scoring != "pointwise":
            raise AgentError("score views need a residual adapter with pointwise scoring")
        llm = label_logprobs(self.model, self.projectors, prompt).tolist()
        ids = [c.item.id for c in prompt.candidates]
        prior = self.prior.scores(user, list(history), ids)
        if retrieval and self.cfg.agent.chat_retrieval_weight:
            prior = prior + self.cfg.agent.chat_retrieval_weight * standardise([c.score for c in prompt.candidates])
        w = self.residual.weights()
        hybrid = mix(llm, prior.tolist(), w["prior_weight"], w["llm_weight"])
        return {"llm": llm, "prior": prior.tolist(), "hybrid": hybrid}

    def dialogue_views(self, prompt: RankPrompt, prior: Sequence[float]) -> dict[str, list[float]]:
        """The three views of `score_views` for a ReDial turn: the LLM, the conversational prior's
        `prior` scores of the candidates (`ConversationPrior.scores`) and their mix by the adapter's
        dialogue residual (what the trainer's dialogue task optimised)."""
        if self.dialogue_residual is None or prompt.scoring != "pointwise":
            raise AgentError(
                "dialogue views need an adapter trained on ReDial turns (residual_dialogue.json)"
            )
        llm = label_logprobs(self.model, self.projectors, prompt).tolist()
        w = self.dialogue_residual.weights()
        return {
            "llm": llm,
            "prior": list(prior),
            "hybrid": mix(llm, list(prior), w["prior_weight"], w["llm_weight"]),
        }

    def rank(
        self,
        prompt: RankPrompt,
        method: str | None = None,
        user: str | None = None,
        history: Sequence[str] = (),
        retrieval: bool = False,
    ) -> Ranking:
        """Rank a built prompt's candidates by the configured (or given) method; a residual adapter
        mixes in its prior for `user` / `history` (watched or liked item ids, oldest first)."""
        method = method or self.cfg.agent.ranker
        weight = self.cfg.agent.retrieval_weight
        if method == "verbalizer" and self.residual is not None and prompt.scoring == "pointwise":
            views = self.score_views(prompt, user, history, retrieval)
            raw = ", ".join(f"{lab}={s:.2f}" for lab, s in zip(prompt.labels, views["llm"], strict=True))
            return ordered_ranking(prompt, views["hybrid"], f"residual: {self.ranker_name}", raw)
        if method == "verbalizer":
            calibrate = self.cfg.agent.calibrate and prompt.scoring == "listwise"
            prior = self.label_prior(len(prompt.candidates)) if calibrate else None
            return rank_verbalizer(self.model, self.projectors, prompt, weight, prior)
        if method == "generative":
            return rank_generative(self.model, self.tokenizer, self.projectors, prompt, weight)
        raise AgentError(f"unknown ranking method {method!r} (known: {', '.join(RANKERS)})")

    def label_prior(self, n: int) -> list[float]:
        """The model's label log-probabilities for n content-free candidates (cached per n)."""
        if n not in self._priors:
            self._priors[n] = label_prior(
                self.model, self.tokenizer, self.template, n, placeholder=self.placeholder
            )
        return self._priors[n]

    def rank_candidates(
        self,
        request: str,
        candidates: Sequence[Candidate],
        state: DialogueState | None = None,
        attachments: Sequence[AttachmentInput] = (),
        method: str | None = None,
    ) -> Ranking:
        """Prompt + rank in one call (what the evaluation uses on saved candidate sets)."""
        return self.rank(self.build_prompt(request, candidates, state, attachments), method)

    # --- explanations -------------------------------------------------------------------------------
    def answer_language(self, turn_language: str | None) -> str:
        """The language explanations are written in ("" = English): the turn's with `answer_language =
        user`, or with `auto` unless the LLM is SmolLM2 (trained on English only; e.g. the online
        profile with `models.llm=Qwen/Qwen2.5-0.5B-Instruct` answers in the user's language)."""
        from fusionrec.models import registry

        mode = self.cfg.agent.answer_language
        english_only = "smollm" in registry.source(self.cfg, "llm").lower()
        if not turn_language or mode == "en" or (mode == "auto" and english_only):
            return ""
        return turn_language

    def explain_events(
        self,
        item: Item,
        request: str,
        rank: int,
        language: str = "",
        state: DialogueState | None = None,
        candidates: Sequence[Candidate] = (),
        attachments: Sequence[Any] = (),
    ) -> Iterator[Event]:
        """Stream one grounded explanation (agent.explain): explanation_token events, then the checked
        `explanation` event with the evidence it was given. `state` (liked films, constraints),
        `candidates` (the turn's ranked candidates: per-modality scores) and `attachments` (anything
        with a `.kind`: this turn's uploads) make the evidence; without a state the constraints are
        read from the request."""
        explainer = self.grounded_explainer()
        if state is None:
            ctx = TurnContext.from_request(request, self.catalog()[1])
        else:
            liked = self.retriever.items(state.liked) if state.liked else []
            kinds = [a.kind for a in attachments]
            ctx = TurnContext.from_state(request, state, liked, kinds, candidates)
        evidence = explainer.evidence(item, ctx)
        pieces = []
        for piece in explainer.stream(evidence, ctx, language):
            pieces.append(piece)
            yield Event("explanation_token", {"rank": rank, "item_id": item.id, "text": piece})
        result: ExplainResult = explainer.check("".join(pieces), item, evidence)
        stats = explainer.stats
        yield Event(
            "explanation",
            {
                "rank": rank,
                "item_id": item.id,
                "explanation": result.explanation,
                "raw": result.raw,
                "fallback": result.fallback,
                "problems": result.raw_problems,
                "evidence": evidence,
                "cited": evidence.cited(result.explanation.text),
                "tokens": stats.tokens,
                "seconds": stats.seconds,
                "prefix_reused": stats.prefix_reused,
            },
        )

    def grounded_explainer(self) -> GroundedExplainer:
        """The explainer (built once): the explaining LLM, the text encoder for the overview sentence,
        the prior's item vectors; it keeps the turn's prompt-prefix cache between the shown items."""
        explainer = self._grounded
        if explainer is None:
            from fusionrec import encoders

            titles, genres = self.catalog()
            explainer = GroundedExplainer(
                self.explainer,
                self.tokenizer,
                self.template,
                encoder=encoders.load_text_encoder(self.cfg),
                vectors=prior_vectors(self.prior, self.collab),
                catalog_titles=titles,
                catalog_genres=genres,
                max_new_tokens=self.cfg.agent.max_new_tokens,
                repetition_penalty=self.cfg.agent.repetition_penalty,
            )
            self._grounded = explainer
        return explainer

    def why(self, state: DialogueState, position: int) -> Iterator[Event]:
        """`/why N`: explain the N-th item of the last answer for the last request (and the dialogue's
        constraints and liked films)."""
        ids = state.last_ranking
        if not 1 <= position <= len(ids):
            shown = f"1..{len(ids)}" if ids else "none yet"
            yield Event(
                "error", {"message": f"There is no item {position} in my last answer (items: {shown})."}
            )
            yield Event("done", {})
            return
        request = next((t.text for t in reversed(state.turns) if t.role == "user"), "")
        item = self.retriever.item(ids[position - 1])
        yield from self.explain_events(item, request, position, state=state)
        yield Event("done", {})

    # --- the turn -----------------------------------------------------------------------------------
    def check_turn(self, turn: Turn) -> tuple[list[Attachment], str | None]:
        """(validated attachments, None) or ([], a clear reply saying what is wrong)."""
        from fusionrec.media import MediaError, validate

        text = turn.text or ""
        if not text.strip() and not turn.attachments:
            return (
                [],
                "Your message is empty. Tell me what you would like to watch, or attach an image, audio or video.",
            )
        limit = self.cfg.agent.max_message_chars
        if len(text) > limit:
            return [], (
                f"Your message is too long ({len(text)} characters; the limit is {limit}). "
                "Please shorten it and send it again."
            )
        checked = []
        for att in turn.attachments:
            try:
                checked.append(
                    validate(att.path, att.kind, max_bytes=self.cfg.agent.max_attachment_mb * 2**20)
                )
            except MediaError as exc:
                return [], f"I could not use the {att.kind} you attached: {exc}. Please attach another file."
            except ValueError as exc:
                return [], f"I could not use the attachment {att.path}: {exc}."
        return checked, None

    def _query_text(self, state: DialogueState, text: str) -> str:
        earlier = [t.text for t in state.turns if t.role == "user" and t.text.strip()]
        keep = earlier[-self.cfg.agent.query_turns :] if self.cfg.agent.query_turns > 0 else []
        return ". ".join([*keep, text.strip()]).strip(". ")

    def _retrieve(
        self, query: QueryVectors, state: DialogueState, like_id: str | None, k: int = 0
    ) -> list[Candidate]:
        k = k or min(self.cfg.agent.num_candidates, 20)
        filters = dialogue.retrieval_filters(state)
        exclude = dialogue.excluded_ids(state)
        if like_id is None:
            return self.retriever.retrieve(filters=filters, exclude_ids=exclude, k=k, query=query)
        return self.retriever.retrieve_like(like_id, query, filters, exclude, k)  # "more like the second"

    def respond(self, state: DialogueState, turn: Turn) -> Iterator[Event]:
        """Answer one user turn; the state is updated as the turn succeeds."""
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        attachments, problem = self.check_turn(turn)
        if problem:
            yield Event("error", {"message": problem})
            yield Event("done", {"seconds": time.perf_counter() - t0, "ok": False})
            return
        before = copy.deepcopy(state)
        try:
            yield from self._respond(state, before, turn, attachments, t0, timings)
        except Exception as exc:  # the session goes on as before the turn; the reply says what failed
            logs.log_traceback(log, "turn failed")  # the traceback: log file only
            _restore(state, before)
            message = f"Sorry, I could not answer that: {failure_text(exc, self.cfg)}"
            yield Event("error", {"message": message})
            yield Event("done", {"seconds": time.perf_counter() - t0, "ok": False, "timings": timings})

    def _fold(self, state: DialogueState, update: dialogue.DialogueUpdate) -> dict[str, Any]:
        """Apply a parsed message to the state (`dialogue.apply_update`); notes name the liked and
        disliked films."""
        feedback = dialogue.apply_update(state, update)
        for key, word in (("disliked", "not"), ("liked", "more like")):
            update.notes += [f"{word} {self.retriever.item(i).title}" for i in feedback[key]]
        return feedback

    def _respond(
        self,
        state: DialogueState,
        before: DialogueState,
        turn: Turn,
        attachments: list[Attachment],
        t0: float,
        timings: dict[str, float],
    ) -> Iterator[Event]:
        text = (turn.text or "").strip()
        shown_years = []
        if state.last_ranking:
            shown_years = [i.year for i in self.retriever.items(state.last_ranking)]
        update = dialogue.parse_turn(text, self.catalog()[1], shown_years)
        feedback = self._fold(state, update)
        query = self._query_text(state, text)
        if update.language:  # the text encoder reads English: search with what was understood, too
            query = ". ".join(x for x in (wanted_text(state), query) if x)
        vectors = self.retriever.query_vectors(query, attachments)  # each upload encoded once per turn
        if vectors.transcripts:  # what was said counts like what was typed: genres, years, "no horror"
            heard = dialogue.parse_turn(" ".join(vectors.transcripts), self.catalog()[1], shown_years)
            said = self._fold(state, heard)
            update.notes += heard.notes
            update.language = update.language or heard.language
            feedback = {
                "liked": feedback["liked"] + said["liked"],
                "disliked": feedback["disliked"] + said["disliked"],
                "query_item": said["query_item"] or feedback["query_item"],
            }
        named = self.named_films(" ".join([text, *vectors.searched]))
        feedback["query_item"] = feedback["query_item"] or name_films(state, named, update.notes)
        conversation = self.chat_task() == "conversation"
        n, pool = min(self.cfg.agent.num_candidates, 20), self.cfg.agent.chat_prior_pool
        retrieved = self._retrieve(vectors, state, feedback["query_item"], max(n, pool) if conversation else n)
        if any(a.kind == "image" for a in attachments):  # an uploaded poster that is a film's own
            same = [c for c in retrieved[:n] if c.modality_scores.get("image", 0.0) >= SAME_IMAGE]
            name_films(state, [Named((c.item.id,), c.item.title, False, False) for c in same], update.notes,
                       "your image is the poster of")  # fmt: skip
            retrieved = [c for c in retrieved if c not in same]
        candidates = retrieved[:n]
        timings["retrieve_s"] = time.perf_counter() - t0
        yield Event(
            "retrieved",
            {
                "candidates": candidates,
                "filters": dialogue.retrieval_filters(state),
                "understood": update.notes,
            },
        )
        if not candidates:
            wanted = constraints_text(state)
            _restore(state, before)  # nothing to show: keep the earlier state, say why
            msg = f"Nothing in the catalog matches all of that ({wanted}). Try 'any year', 'any genre' or /reset."
            yield Event("message", {"text": msg})
            yield Event("done", {"seconds": time.perf_counter() - t0, "ok": True, "timings": timings})
            return
        history = list(state.turns)
        if conversation:  # the prior proposes candidates too; the prompt lists them in its order, as trained
            candidates = self.prior_picks(retrieved, state)
            prior = dict(zip([c.item.id for c in candidates], self.conversation_scores(candidates, state), strict=True))
            candidates = sorted(candidates, key=lambda c: -prior[c.item.id])
        state.turns.append(Turn("user", text, list(attachments)))
        inputs = self.attachment_inputs(vectors.uploads)
        prompt = self.build_prompt(text or "(see the attachment)", candidates, state, inputs, history)
        views: dict[str, list[Any]] = {}
        if conversation:
            views = self.dialogue_views(prompt, [prior[c.item.id] for c in prompt.candidates])
            views["ids"] = [c.item.id for c in prompt.candidates]
            raw = ", ".join(f"{lab}={x:.2f}" for lab, x in zip(prompt.labels, views["llm"], strict=True))
            ranking = ordered_ranking(prompt, views["hybrid"], f"residual: {self.ranker_name}", raw)
        else:
            ranking = self.rank(prompt, history=list(state.liked), retrieval=True)
        timings["rank_s"] = time.perf_counter() - t0
        shown = distinct_titles(ranking.candidates)[: self.cfg.agent.show_top_k]
        state.last_ranking = [c.item.id for c in shown]
        state.shown.extend(i for i in state.last_ranking if i not in state.shown)
        yield Event(
            "ranked",
            {
                "ranking": ranking,
                "shown": shown,
                "prompt_tokens": len(prompt.encoded),
                "soft_tokens": list(prompt.encoded.keys),
                "dropped_turns": prompt.dropped_turns,
                "ranker": self.ranker_name,
                "views": views,
            },
        )
        request = text or "; ".join(a.details for a in inputs if a.details) or "something like my attachment"
        for rank, cand in enumerate(shown[: self.cfg.agent.explain_top_k], start=1):
            language = self.answer_language(update.language)
            turn_facts = {"state": state, "candidates": ranking.candidates, "attachments": attachments}
            for event in self.explain_events(cand.item, request, rank, language, **turn_facts):
                if event.kind == "explanation_token" and "first_token_s" not in timings:
                    timings["first_token_s"] = time.perf_counter() - t0
                yield event
        reply = summary_text(shown, update.notes)
        state.turns.append(Turn("assistant", reply))
        yield Event("message", {"text": reply})
        yield Event("done", {"seconds": time.perf_counter() - t0, "ok": True, "timings": timings})


PRIOR_POOL = 2000  # a conversation-prior turn looks this far down the prior's order for films the filters allow
SAME_IMAGE = 0.99  # image similarity from which an upload is taken for the candidate's own poster


def chat_mentions(state: DialogueState) -> list[str]:
    """The films a chat has mentioned so far (shown, liked, disliked): what the conversational prior reads."""
    return list(dict.fromkeys([*state.shown, *state.liked, *state.disliked]))


def name_films(
    state: DialogueState, named: Sequence[Named], notes: list[str], how: str = "you named"
) -> str | None:
    """Fold the films a message names into the state (refused: disliked; otherwise liked, so never
    recommended back); returns the first film given as a model ("like X") to anchor the search."""
    anchor = None
    for film in named:
        target = state.disliked if film.refused else state.liked
        target.extend(i for i in film.ids if i not in target)
        notes.append(f"{'not' if film.refused else how} {film.title}")
        if film.model and not film.refused and anchor is None:
            anchor = film.ids[0]
    return anchor


def distinct_titles(candidates: Sequence[Candidate]) -> list[Candidate]:
    """The candidates in order, each (title, year) once: catalogs hold duplicate records of one film
    (ML-100k lists some titles under two ids), and a list showing a film twice reads as a bug."""
    seen: set[tuple[str, int | None]] = set()
    out = []
    for cand in candidates:
        key = (cand.item.title.casefold().strip(), cand.item.year)
        if key not in seen:
            seen.add(key)
            out.append(cand)
    return out


def _restore(state: DialogueState, before: DialogueState) -> None:
    """Put `state` back as it was (`before`: its deep copy taken at the start of the turn)."""
    for name in vars(before):
        setattr(state, name, getattr(before, name))


def summary_text(shown: Sequence[Candidate], notes: Sequence[str] = ()) -> str:
    """The reply listing the items shown: numbered, with year and genres."""
    head = "Here is what I found" + (f" ({'; '.join(notes)})" if notes else "") + ":"
    lines = [head]
    for i, cand in enumerate(shown, start=1):
        it = cand.item
        year = f" ({it.year})" if it.year else ""
        genres = f" - {', '.join(it.genres)}" if it.genres else ""
        lines.append(f"{i}. {it.title}{year}{genres}")
    return "\n".join(lines)
