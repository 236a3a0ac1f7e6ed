"""Constraints in German, French, Spanish and Chinese: genres, decades/years, negations, language notes."""

from __future__ import annotations

import pytest

from fusionrec.agent.dialogue import apply_update, parse_turn, retrieval_filters
from fusionrec.agent.language import detect_language
from fusionrec.types import DialogueState

GENRES = ["Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
          "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War",
          "Western"]  # fmt: skip
NINETIES = (1990, 1999)


def parsed(text: str) -> tuple[str | None, set[str], set[str], tuple[int | None, int | None]]:
    up = parse_turn(text, GENRES)
    return up.language, up.include_genres, up.exclude_genres, (up.year_min, up.year_max)


@pytest.mark.parametrize(
    ("text", "language", "wanted", "refused", "years"),
    [
        # the two requests of the issue
        (
            "Ein lustiger Weltraumfilm aus den Neunzigern, bitte keinen Horror",
            "de",
            {"Comedy", "Sci-Fi"},
            {"Horror"},
            NINETIES,
        ),
        ("轻松的九十年代喜剧，不要恐怖片", "zh", {"Comedy"}, {"Horror"}, NINETIES),
        ("Une comédie des années 90, pas d'horreur", "fr", {"Comedy"}, {"Horror"}, NINETIES),
        ("Una comedia de los 90, sin terror por favor", "es", {"Comedy"}, {"Horror"}, NINETIES),
        ("Eine Komödie aus den 90er Jahren ohne Horror", "de", {"Comedy"}, {"Horror"}, NINETIES),
        (
            "Je veux un film de science-fiction, plutôt des années quatre-vingt-dix",
            "fr",
            {"Sci-Fi"},
            set(),
            NINETIES,
        ),
        (
            "Quiero ciencia ficción de los años noventa, nada de terror",
            "es",
            {"Sci-Fi"},
            {"Horror"},
            NINETIES,
        ),
        ("90年代的科幻片，不想看恐怖的", "zh", {"Sci-Fi"}, {"Horror"}, NINETIES),
        ("Ein Krimi aus den 70ern", "de", {"Crime"}, set(), (1970, 1979)),
        ("Un polar de 1995", "fr", {"Crime"}, set(), (1995, 1995)),
        ("Un western después de 2000", "es", {"Western"}, set(), (2001, None)),
        ("1995年的爱情片", "zh", {"Romance"}, set(), (1995, 1995)),
        ("一九九五年的动画", "zh", {"Animation"}, set(), (1995, 1995)),
        ("Eine Horrorkomödie zwischen 1985 und 1995", "de", {"Horror", "Comedy"}, set(), (1985, 1995)),
        ("Un documental o un drama de los ochenta", "es", {"Documentary", "Drama"}, set(), (1980, 1989)),
        ("Un dessin animé d'avant 1980", "fr", {"Animation"}, set(), (None, 1979)),
        ("有没有八十年代的战争片", "zh", {"War"}, set(), (1980, 1989)),  # "有没有" asks, refuses nothing
    ],
)
def test_constraints_per_language(text, language, wanted, refused, years):
    assert parsed(text) == (language, wanted, refused, years)


NEGATED = {
    "de": ["keinen Horror", "kein Horrorfilm", "ohne Horror", "bitte keine Gruselfilme", "nichts Gruseliges",
           "Horror bitte nicht", "Horror? Nein danke.", "alles außer Horror", "weder Horror noch Thriller",
           "Ich will keinen Horror sehen"],
    "fr": ["pas d'horreur", "sans horreur", "aucun film d'horreur", "pas de films d'épouvante",
           "tout sauf l'horreur", "je n'aime pas l'horreur", "l'horreur, non merci", "ni horreur ni thriller",
           "rien d'effrayant"],
    "es": ["sin terror", "nada de terror", "no quiero terror", "ninguna de terror", "terror no, por favor",
           "excepto terror", "ni terror ni suspense", "nada que dé miedo", "películas sin terror"],
    "zh": ["不要恐怖片", "不想看恐怖片", "别给我恐怖片", "没有恐怖元素的", "恐怖片不要", "除了恐怖片都行",
           "讨厌恐怖片", "恐怖片？不要", "不喜欢恐怖片"],
}  # fmt: skip


@pytest.mark.parametrize(
    ("language", "text"), [(lang, text) for lang, texts in NEGATED.items() for text in texts]
)
def test_a_negated_genre_is_excluded_never_required(language, text):
    got_language, wanted, refused, _ = parsed(text)
    assert got_language == language
    assert "Horror" in refused and "Horror" not in wanted


@pytest.mark.parametrize(
    ("text", "wanted", "refused"),
    [
        ("Keinen Horror, sondern eine Komödie", {"Comedy"}, {"Horror"}),
        ("Ich will Horror und nicht Komödie", {"Horror"}, {"Comedy"}),
        ("Nicht nur Komödien, auch Action", {"Comedy", "Action"}, set()),  # "nicht nur": no refusal
        ("Pas d'horreur mais une comédie", {"Comedy"}, {"Horror"}),
        ("Sin terror, pero una comedia sí", {"Comedy"}, {"Horror"}),
        ("不要恐怖片，但是要喜剧", {"Comedy"}, {"Horror"}),
        ("除了喜剧还想要动作片", {"Comedy", "Action"}, set()),  # 除了...还: "besides", not "except"
        ("特别好笑的喜剧", {"Comedy"}, set()),  # 特别 ("especially") holds no 别 ("don't")
    ],
)
def test_negation_attaches_to_the_right_genre(text, wanted, refused):
    _, got_wanted, got_refused, _ = parsed(text)
    assert (got_wanted, got_refused) == (wanted, refused)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("no horror please", None),
        ("I want a sci-fi movie but no horror", None),
        ("something like Die Hard", None),  # one German-looking word is not German
        ("El Mariachi", None),
        ("a drama from the 90s", None),
        ("Komödie", "de"),
        ("comédie", "fr"),
        ("comedia", "es"),
        ("喜剧", "zh"),
        ("ホラーじゃないコメディ", "ja"),
        ("una commedia degli anni novanta", "it"),
    ],
)
def test_language_of_a_turn(text, language):
    assert parse_turn(text, GENRES).language == language
    assert detect_language(text) == (language or "en")


def test_english_is_unchanged():
    up = parse_turn("a comedy from the 90s, no horror", GENRES)
    assert up.language is None and up.notes == ["genres: Comedy", "no Horror", "years 1990-1999"]


def test_notes_say_language_understood_and_not_understood():
    up = parse_turn("Ein lustiger Weltraumfilm aus den Neunzigern mit Zeitreise, bitte keinen Horror", GENRES)
    assert up.notes == ["language: de", "genres: Comedy, Sci-Fi", "no Horror", "years 1990-1999",
                        "not understood: Zeitreise"]  # fmt: skip
    assert parse_turn("轻松的九十年代喜剧，不要恐怖片", GENRES).notes == [
        "language: zh", "genres: Comedy", "no Horror", "years 1990-1999"
    ]  # fmt: skip
    up = parse_turn("有没有关于时间旅行的喜剧", GENRES)
    assert up.notes[0] == "language: zh" and up.notes[-1] == "not understood: 时间旅行"


def test_an_unsupported_language_is_said_and_its_wishes_are_not_applied():
    up = parse_turn("una commedia degli anni novanta, niente horror", GENRES)
    assert up.language == "it" and not up.include_genres  # "niente horror" must not become "horror"
    assert up.notes[0] == "language: it"
    assert any(n.startswith("genre words not used") and "Horror" in n for n in up.notes)
    assert any(n.startswith("not understood:") and "commedia" in n for n in up.notes)


def test_constraints_feed_retrieval_across_turns():
    state = DialogueState()
    apply_update(
        state, parse_turn("Ein lustiger Weltraumfilm aus den Neunzigern, bitte keinen Horror", GENRES)
    )
    assert retrieval_filters(state) == {
        "genres": ["Comedy", "Sci-Fi"], "exclude_genres": ["Horror"], "year_min": 1990, "year_max": 1999
    }  # fmt: skip
    apply_update(state, parse_turn("Egal welches Jahr, auch keine Western", GENRES))
    assert state.year_min is None and state.year_max is None
    assert state.exclude_genres == {"Horror", "Western"}


def test_relative_years_in_other_languages():
    shown = [1990, 1994, 1995, 1996, 1997]
    assert parse_turn("algo más reciente", GENRES, shown).year_min == 1996
    assert parse_turn("quelque chose de plus ancien", GENRES, shown).year_max == 1994
    assert parse_turn("来点新一点的", GENRES, shown).year_min == 1996


def test_a_non_english_turn_is_searched_with_what_was_understood_in_english():
    from fusionrec.agent.dialogue import DialogueState, apply_update, parse_turn
    from fusionrec.agent.prompt import wanted_text

    state = DialogueState()
    apply_update(state, parse_turn("Ein lustiger Weltraumfilm aus den Neunzigern, bitte keinen Horror"))
    assert wanted_text(state) == "Comedy, Sci-Fi films years 1990 to 1999"  # no "Horror": a filter, not a word
    assert wanted_text(DialogueState()) == ""


@pytest.mark.parametrize(("language", "asks"), [("de", "in German"), ("zh", "in Chinese"), ("", None)])
def test_the_explanation_prompt_asks_for_the_users_language(tiny_cfg, language, asks):
    from transformers import AutoTokenizer

    from fusionrec.agent.prompt import explain_prompt
    from fusionrec.models.registry import tiny_paths
    from fusionrec.types import Item

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_paths(tiny_cfg.models_dir)["llm"]))
    item = Item(id="1", title="Toy Story", year=1995, genres=["Animation", "Comedy"])
    text, prefix = explain_prompt(tokenizer, "compact", item, "etwas Lustiges", language)
    if asks:
        assert f"Write the explanation {asks}." in text and prefix == "Toy Story: "
    else:
        assert "Write the explanation in" not in text and "fits because" in prefix


def test_auto_answers_in_english_with_smollm2_and_in_the_users_language_otherwise(tiny_agent):
    import copy

    agent = copy.copy(tiny_agent)
    agent.cfg = copy.deepcopy(tiny_agent.cfg)
    assert agent.answer_language("de") == "de"  # the tiny LLM is not SmolLM2
    agent.cfg.models.llm = "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert agent.answer_language("de") == ""  # English-only model
    agent.cfg.agent.answer_language = "user"
    assert agent.answer_language("de") == "de" and agent.answer_language(None) == ""
    agent.cfg.agent.answer_language = "en"
    agent.cfg.models.llm = "Qwen/Qwen2.5-0.5B-Instruct"
    assert agent.answer_language("zh") == ""
