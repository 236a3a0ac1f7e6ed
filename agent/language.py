"""Which language a user's message is in: script ranges first (CJK, Cyrillic, ...), then stop words.

Dependency-free and meant for short chat turns: a message in a non-Latin script gets that script's
language; a Latin-script message gets the language whose common words (and, through
`agent.lexicon`, genre and negation words) it uses most, English when nothing stands out.
`fold` lower-cases and strips accents one character at a time, so offsets in the folded text are
offsets in the original.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

ENGLISH = "en"
NAMES = {"en": "English", "de": "German", "fr": "French", "es": "Spanish", "zh": "Chinese", "it": "Italian",
         "pt": "Portuguese", "nl": "Dutch", "ja": "Japanese", "ko": "Korean", "ru": "Russian", "el": "Greek",
         "ar": "Arabic", "he": "Hebrew", "hi": "Hindi", "th": "Thai"}  # fmt: skip


def wordset(text: str) -> frozenset[str]:
    """The space-separated words of `text`, as a set."""
    return frozenset(text.split())


# (language, characters); the first script with a character in the text wins (kana before Han: Japanese)
SCRIPTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ja", re.compile(r"[\u3040-\u30ff\u31f0-\u31ff]")),
    ("ko", re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")),
    ("zh", re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff]")),
    ("ru", re.compile(r"[\u0400-\u04ff]")),
    ("el", re.compile(r"[\u0370-\u03ff]")),
    ("ar", re.compile(r"[\u0600-\u06ff]")),
    ("he", re.compile(r"[\u0590-\u05ff]")),
    ("hi", re.compile(r"[\u0900-\u097f]")),
    ("th", re.compile(r"[\u0e00-\u0e7f]")),
)
# frequent words (folded: lower case, no accents); words common in English requests are left out of
# the other lists ("in", "an", "so", "was", "will" are German too; "a", "no" Spanish too)
STOP_WORDS: dict[str, frozenset[str]] = {
    "en": wordset(
        "the a an and or of for with from to in on at by is are be me my i you your it this that these "
        "those some something anything movie movies film films show please want would like looking "
        "recommend suggest give find any not no without but maybe more less very too really good great "
        "nothing please thanks thank can could what which about"
    ),
    "de": wordset(
        "der die das den dem des ein eine einen einem einer eines und oder aber mit ohne von aus fur "
        "zum zur ich mir mich mochte mochten hatte gern gerne bitte danke ist sind sein etwas irgendwas "
        "nicht kein keine keinen keinem keiner keines auch noch nur sehr bloss lieber jahre jahren jahr "
        "zeig zeige empfiehl empfehle suche such wir uns du dir dich wie welche welcher welches gibt "
        "es ja nein vielleicht bei nach vor seit bis ab um uber zwischen mal doch wieder neue neuen"
    ),
    "fr": wordset(
        "le la les un une des du de d l au aux et ou mais avec sans pour par je j me moi tu te vous nous "
        "il elle on est sont veux voudrais voudrait aimerais cherche montre montrez recommande conseille "
        "quelque chose pas ne n ni aucun aucune rien non merci svp plait s sil vous plus tres trop bien "
        "film films annees annee ans qui que quoi quel quelle ce cet cette ces mon ma mes surtout peu apres avant depuis jusqu"
    ),
    "es": wordset(
        "el la los las un una unos unas y o pero con sin para por de del al que quiero querria busco "
        "me mi yo tu te nos muestra muestrame recomienda recomiendame algo alguna alguno nada ni "
        "no si por favor gracias muy mas menos pelicula peliculas peli pelis anos ano sea es son esta "
        "este esto estos estas eso favor tambien tampoco solo ver despues antes desde hasta entre"
    ),
    "it": wordset(
        "il lo gli una uno di del della dei delle che con senza per vorrei voglio cerco un film niente "
        "anni qualcosa grazie molto non piu"
    ),
    "pt": wordset(
        "o os um uma uns umas do da dos das em com sem para por que quero gostaria procuro filme filmes "
        "nada anos algo obrigado obrigada muito nao mais voce"
    ),
    "nl": wordset(
        "de het een en of maar met zonder voor van uit ik wil zou graag zoek film films geen niet iets "
        "jaren alsjeblieft bedankt heel meer"
    ),
}
# characters that point at one language (folded away by `fold`, so they are counted on the original)
MARKS = {"de": "äöüß", "fr": "çèêàùâîôûœë", "es": "ñ¿¡", "pt": "ãõ"}
STRONG = 2  # weight of a telling letter or a lexicon word against one stop word
MIN_EVIDENCE = 2  # one stop word alone ("Die Hard", "El Mariachi") is not enough
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def fold(text: str) -> str:
    """Lower case without accents, one character for one ("Komödie" -> "komodie"); offsets are kept."""
    return "".join(unicodedata.normalize("NFD", c.lower()[:1] or c)[:1] for c in text)


def words(text: str) -> list[str]:
    """The folded words of a Latin-script text ("l'horreur" -> ["l", "horreur"])."""
    return _WORD.findall(fold(text))


def script_language(text: str) -> str | None:
    """The language of a non-Latin script the text uses (the script with most characters), else None."""
    counts = {lang: len(pattern.findall(text)) for lang, pattern in SCRIPTS}
    lang, n = max(counts.items(), key=lambda kv: kv[1])
    return lang if n else None


def language_scores(text: str) -> Counter[str]:
    """Evidence per Latin-script language: stop words (1 each), telling letters and lexicon words (STRONG)."""
    from fusionrec.agent.lexicon import lexicon_hits  # the lexicon imports `fold` from here

    scores: Counter[str] = Counter()
    for word in words(text):
        for lang, stop in STOP_WORDS.items():
            if word in stop:
                scores[lang] += 1
    lower = text.lower()
    for lang, marks in MARKS.items():
        scores[lang] += STRONG * sum(lower.count(c) for c in marks)
    for lang, n in lexicon_hits(text).items():
        scores[lang] += STRONG * n
    return scores


def detect_language(text: str) -> str:
    """ISO 639-1 code of the message's language ("en", "de", "fr", "es", "zh", ...); "en" when unsure."""
    text = text or ""
    if lang := script_language(text):
        return lang
    scores = language_scores(text)
    if not scores:
        return ENGLISH
    ranked = scores.most_common()
    best, top = ranked[0]
    if top < MIN_EVIDENCE or top <= scores[ENGLISH] or (len(ranked) > 1 and ranked[1][1] == top):
        return ENGLISH  # too little to go on ("Die Hard"), or a tie: the parser's default
    return best
