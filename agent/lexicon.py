"""Constraint words in German, French, Spanish and Chinese: genres, negations, decades and years.

Patterns are regular-expression fragments over `agent.language.fold`ed text (lower case, no accents:
"Komödie" is matched as "komodie", "años" as "anos"). Latin-script words must stand alone
("comedias?"), except German genre words, which also count inside compounds ("Weltraumfilm",
"Horrorkomödie"); Chinese has no spaces, so its words are matched anywhere. A year is written `Y`.
Genre words under `loose` only hint at a genre (like English "scary"): a refusal ("pas trop
effrayant") excludes it, a wish is left to the query text.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import cached_property

from fusionrec.agent.language import fold, wordset

Y = r"(1[89]\d\d|20\d\d)"


@dataclass(frozen=True)
class Lexicon:
    """One language's constraint words (see the module docstring for the pattern conventions)."""

    code: str
    genres: dict[str, tuple[str, ...]]  # canonical genre -> patterns
    loose: frozenset[str]  # patterns (as written in `genres`) that only hint
    negations: tuple[str, ...]  # words that refuse what follows them in the clause (or a clause they end)
    clause_breaks: tuple[str, ...]  # words that start a new clause ("aber", "mais", "pero", "但是")
    decades: dict[str, int]  # pattern -> first year of the decade
    decade_digits: str  # pattern whose group 1 is "9" / "199" for the 1990s ("90er", "années 90")
    between: tuple[str, ...] = ()  # two years
    after: tuple[str, ...] = ()  # "nach 2000": from the next year on
    since: tuple[str, ...] = ()  # "seit 1990": from that year on
    before: tuple[str, ...] = ()  # "vor 1980": up to the year before
    until: tuple[str, ...] = ()  # "bis 1980": up to that year
    single: tuple[str, ...] = ()  # one year ("im Jahr 1995"); a bare year also counts
    newer: str = r"(?!x)x"  # "something newer" (relative to what was shown)
    older: str = r"(?!x)x"
    any_year: str = r"(?!x)x"
    any_genre: str = r"(?!x)x"
    fillers: frozenset[str] = frozenset()  # words that carry no constraint ("bitte", "película", "电影")
    ignore_english: frozenset[str] = frozenset()  # English genre words that mean something else here
    compounds: bool = False  # genre words count inside longer words (German)
    spaced: bool = True  # words are separated by spaces (not Chinese)
    not_negations: tuple[str, ...] = ()  # phrases with a negation word that refuse nothing ("nicht nur")

    def _bounded(self, alt: str, compound: bool = False) -> re.Pattern[str]:
        if not self.spaced:
            return re.compile(f"(?:{alt})")
        left, right = (r"", r"") if compound else (r"(?<![^\W\d_])", r"(?![^\W\d_])")
        return re.compile(rf"{left}(?:{alt}){right}")

    @cached_property
    def genre_patterns(self) -> tuple[tuple[str, str, re.Pattern[str]], ...]:
        """(genre, pattern source, compiled) for every genre word."""
        return tuple(
            (genre, p, self._bounded(p, self.compounds)) for genre, pats in self.genres.items() for p in pats
        )

    @cached_property
    def negation(self) -> re.Pattern[str]:
        return self._bounded("|".join(self.negations))

    @cached_property
    def not_negation(self) -> re.Pattern[str]:
        return self._bounded("|".join(self.not_negations) or r"(?!x)x")

    @cached_property
    def clause_break(self) -> re.Pattern[str]:
        words = self._bounded("|".join(self.clause_breaks)).pattern if self.clause_breaks else r"(?!x)x"
        return re.compile(rf"[.,;:!?，。；：！？、]|{words}")


# fmt: off
GERMAN = Lexicon(
    code="de",
    genres={
        "Action": ("action",),
        "Adventure": ("abenteuer",),
        "Animation": ("zeichentrick", "trickfilm", "animationsfilm", "animiert"),
        "Children's": ("kinderfilm", "familienfilm", r"kinder\b", r"\bkids?\b"),
        "Comedy": ("komodie", "komodien", "lustig", "witzig", "comedy", "klamauk"),
        "Crime": ("krimi", "verbrechen", "gangster", "mafia"),
        "Documentary": ("dokumentar", r"\bdoku"),
        "Drama": ("drama", "dramen"),
        "Fantasy": ("fantasy", "marchen"),
        "Film-Noir": (r"film[\s-]?noir",),
        "Horror": ("horror", "grusel", "schocker", "unheimlich"),
        "Musical": ("musical", "musikfilm"),
        "Mystery": ("mystery", "ratsel", "detektiv"),
        "Romance": ("liebes", "romantisch", "romanze", "romantik"),
        "Sci-Fi": (r"science[\s-]?fiction", "weltraum", "raumschiff", r"au(?:ss|ß)erirdisch", r"\bsci-?fi"),
        "Thriller": ("thriller", "spannend", "spannung"),
        "War": ("kriegs", r"krieg\b", r"kriege\b"),
        "Western": ("western",),
    },
    loose=frozenset({r"kinder\b", r"\bkids?\b", "gangster", "mafia", "marchen", "unheimlich", "detektiv",
                     "raumschiff", r"au(?:ss|ß)erirdisch", "spannend", "spannung", "ratsel"}),
    negations=("kein", "keine", "keinen", "keinem", "keiner", "keines", "ohne", "nicht", "nichts", "nie",
               "niemals", "nein", r"au(?:ss|ß)er", "weder", "vermeide", "vermeiden", "bloss kein"),
    clause_breaks=("aber", "sondern", "jedoch", "stattdessen", "lieber"),
    decades={r"zwanziger": 1920, r"drei(?:ss|ß)iger": 1930, r"vierziger": 1940, r"f(?:u|ue)nfziger": 1950,
             r"sechziger": 1960, r"siebziger": 1970, r"achtziger": 1980, r"neunziger": 1990,
             r"nuller[\s-]?jahre": 2000},
    decade_digits=r"(?<!\d)((?:19|20)?\d)0\s?er(?:n|\b|[\s-]?jahre)",
    between=(rf"zwischen\s+{Y}\s+und\s+{Y}", rf"von\s+{Y}\s+bis\s+{Y}", rf"{Y}\s*(?:-|–|bis)\s*{Y}"),
    after=(rf"nach\s+{Y}",),
    since=(rf"(?:seit|ab)\s+{Y}", rf"{Y}\s+(?:oder|und)\s+(?:spater|neuer|danach)"),
    before=(rf"vor\s+{Y}",),
    until=(rf"bis\s+{Y}", rf"{Y}\s+(?:oder|und)\s+(?:fruher|alter|davor)"),
    single=(rf"(?:aus|von|im(?:\s+jahr(?:e|gang)?)?|jahrgang)\s+{Y}",),
    newer=r"\b(?:neuere[smn]?|neueres|aktuellere[smn]?|modernere[smn]?|jungere[smn]?|etwas\s+neues)\b",
    older=r"\b(?:altere[smn]?|klassiker)\b",
    any_year=r"\b(?:egal\s+welche[sn]?\s+(?:jahr|jahrzehnt)|jedes\s+jahr|beliebige[sn]?\s+jahr)",
    any_genre=r"\b(?:egal\s+welche[sn]?\s+genre|jedes\s+genre|beliebige[sn]?\s+genre)",
    fillers=wordset(
        "film filme filmen streifen movie movies art sorte genre etwas irgendwas irgendetwas zeig zeige "
        "zeigen empfiehl empfehlen vorschlag vorschlage suche suchen such mochte mochten hatte hatten "
        "gern gerne bitte danke schon mal vielleicht eher richtig so ganz wirklich gut guten gute toll "
        "schauen ansehen sehen gucken anschauen heute abend heut jetzt alle welche einer den bin will "
        "wollen was in an zu so ja also the jahre jahren jahrzehnt"
    ),
    ignore_english=frozenset({"war"}),  # "der Film war lustig": German "war" is "was"
    not_negations=(r"nicht\s+nur", r"nicht\s+zu\s+alt", r"nicht\s+schlecht"),
    compounds=True,
)

FRENCH = Lexicon(
    code="fr",
    genres={
        "Adventure": ("aventures?",),
        "Animation": (r"dessins?\s+animes?", "d'animation", r"film\s+d'animation"),
        "Children's": (r"pour\s+(?:les\s+)?enfants", "enfants?", "jeunesse"),
        "Comedy": ("comedies?", "comiques?", "droles?", "humoristiques?", "marrants?", "rigolos?"),
        "Crime": ("policiers?", "polars?", "criminels?", "mafia"),
        "Documentary": ("documentaires?",),
        "Drama": ("drames?", "dramatiques?"),
        "Fantasy": ("fantastiques?", "merveilleux", "fantasy"),
        "Horror": ("horreur", "epouvante", "effrayants?", "effrayantes?", r"qui\s+fait\s+peur", "peur"),
        "Musical": (r"comedies?\s+musicales?", "musicales?"),
        "Mystery": ("mysteres?", "enigmes?"),
        "Romance": ("romantiques?", r"histoires?\s+d'amour", "d'amour", "amour"),
        "Sci-Fi": (r"science[\s-]+fiction", "spatial", "spatiale", "spatiales", "spatiaux", "l'espace",
                   "extraterrestres?"),
        "Thriller": ("suspens",),
        "War": ("guerres?",),
        "Western": ("westerns?",),
    },
    loose=frozenset({r"pour\s+(?:les\s+)?enfants", "enfants?", "jeunesse", "mafia", "effrayants?", "peur",
                     "fantastiques?",
                     "effrayantes?", r"qui\s+fait\s+peur", r"histoires?\s+d'amour", "d'amour", "amour",
                     "merveilleux", "l'espace", "extraterrestres?", "suspens", "enigmes?"}),
    negations=("pas", "sans", "aucun", "aucune", "ni", "non", "jamais", "rien", "sauf", "hormis", "excepte",
               "evite", "eviter", "evitez"),
    clause_breaks=("mais", "plutot", "cependant", "pourtant"),
    not_negations=(r"pas\s+seulement", r"non\s+seulement", r"pas\s+mal", r"pas\s+trop\s+vieux"),
    decades={r"annees\s+(?:19)?vingt": 1920, r"annees\s+trente": 1930, r"annees\s+quarante": 1940,
             r"annees\s+cinquante": 1950, r"annees\s+soixante(?![\s-]+dix)": 1960,
             r"annees\s+soixante[\s-]+dix": 1970, r"annees\s+quatre[\s-]+vingts?(?![\s-]+dix)": 1980,
             r"annees\s+quatre[\s-]+vingt[\s-]+dix": 1990, r"annees\s+2000": 2000},
    decade_digits=r"\bannees\s+((?:19|20)?\d)0s?\b",
    between=(rf"entre\s+{Y}\s+et\s+{Y}", rf"de\s+{Y}\s+a\s+{Y}", rf"{Y}\s*(?:-|–)\s*{Y}"),
    after=(rf"apres\s+{Y}",),
    since=(rf"(?:depuis|a\s+partir\s+de)\s+{Y}",),
    before=(rf"avant\s+{Y}",),
    until=(rf"jusqu'?\s*(?:a|en)\s+{Y}",),
    single=(rf"(?:en|de|d'|annee)\s*{Y}",),
    newer=r"\bplus\s+(?:recents?|recentes?|nouveaux?|modernes?)\b",
    older=r"\bplus\s+(?:anciens?|anciennes?|vieux|vieilles?)\b|\bclassiques?\b",
    any_year=r"\b(?:n'importe\s+quelle\s+(?:annee|epoque)|peu\s+importe\s+l'(?:annee|epoque))",
    any_genre=r"\b(?:n'importe\s+quel\s+genre|peu\s+importe\s+le\s+genre)",
    fillers=wordset(
        "film films cinema genre style truc quelque chose montre montrez montre-moi recommande "
        "recommandez conseille conseillez propose proposez cherche voudrais voudrait veux aimerais "
        "aime bon bonne bons bien merci plait svp s'il vous voir regarder ce soir un une des les du "
        "de d l la le qui ou avec pour moi me je j ans annee annees plus tres trop peu genre"
    ),
)

SPANISH = Lexicon(
    code="es",
    genres={
        "Action": ("accion",),
        "Adventure": ("aventuras?",),
        "Animation": ("animacion", "animadas?", "animados?", r"dibujos\s+animados"),
        "Children's": (r"infantil(?:es)?", r"para\s+(?:los\s+)?ninos", "ninos"),
        "Comedy": ("comedias?", "comicas?", "comicos?", "divertidas?", "divertidos?", "graciosas?",
                   "graciosos?"),
        "Crime": ("policiacas?", "policiacos?", r"policial(?:es)?", r"crimen(?:es)?", r"criminal(?:es)?", "mafia"),
        "Documentary": (r"documental(?:es)?",),
        "Drama": ("dramas", "dramaticas?", "dramaticos?"),
        "Fantasy": ("fantasia", "fantasticas?"),
        "Film-Noir": (r"cine\s+negro",),
        "Horror": ("terror", "miedo", "sustos?", "terrorificas?"),
        "Musical": ("musicales",),
        "Mystery": ("misterios?", "misteriosas?"),
        "Romance": ("romanticas?", "romanticos?", r"de\s+amor", "amor"),
        "Sci-Fi": (r"ciencia[\s-]+ficcion", r"espacial(?:es)?", r"del\s+espacio", "extraterrestres?"),
        "Thriller": ("suspenso",),
        "War": ("guerras?", "belicas?", "belicos?"),
        "Western": (r"del\s+oeste", "vaqueros"),
    },
    loose=frozenset({r"para\s+(?:los\s+)?ninos", "ninos", "mafia", "miedo", "sustos?", "misteriosas?", "amor",
                     "fantasticas?", "extraterrestres?", "suspenso", "vaqueros"}),
    negations=("no", "sin", "nada", "ni", "nunca", "jamas", "ninguna", "ninguno", "ningun", "excepto",
               "salvo", "menos", "tampoco", "evita", "evitar", "evitemos"),
    clause_breaks=("pero", "sino", "aunque", "mejor"),
    not_negations=(r"no\s+solo", r"no\s+solamente", r"nada\s+mal", r"no\s+importa"),
    decades={r"(?:los|anos|decada\s+de\s+los)\s+(?:anos\s+)?veinte": 1920,
             r"(?:los|anos|decada\s+de\s+los)\s+(?:anos\s+)?treinta": 1930,
             r"(?:los|anos|decada\s+de\s+los)\s+(?:anos\s+)?cuarenta": 1940,
             r"(?:los|anos|decada\s+de\s+los)\s+(?:anos\s+)?cincuenta": 1950,
             r"(?:los|anos|decada\s+de\s+los)\s+(?:anos\s+)?sesenta": 1960,
             r"(?:los|anos|decada\s+de\s+los)\s+(?:anos\s+)?setenta": 1970,
             r"(?:los|anos|decada\s+de\s+los)\s+(?:anos\s+)?ochenta": 1980,
             r"(?:los|anos|decada\s+de\s+los)\s+(?:anos\s+)?noventa": 1990,
             r"(?:los|anos|decada\s+de\s+los)\s+(?:anos\s+)?2000": 2000},
    decade_digits=r"\b(?:los|anos|decada\s+de\s+los)\s+(?:anos\s+)?((?:19|20)?\d)0s?\b",
    between=(rf"entre\s+(?:el\s+)?{Y}\s+y\s+(?:el\s+)?{Y}", rf"del?\s+{Y}\s+al?\s+{Y}", rf"{Y}\s*(?:-|–)\s*{Y}"),
    after=(rf"despues\s+del?\s+{Y}",),
    since=(rf"(?:desde|a\s+partir\s+del?)\s+(?:el\s+)?{Y}",),
    before=(rf"antes\s+del?\s+{Y}",),
    until=(rf"hasta\s+(?:el\s+)?{Y}",),
    single=(rf"(?:de|del|en|en\s+el|ano)\s+{Y}",),
    newer=r"\bmas\s+(?:recientes?|nuevas?|nuevos?|modernas?|modernos?)\b",
    older=r"\bmas\s+(?:antiguas?|antiguos?|viejas?|viejos?)\b|\bclasicas?\b|\bclasicos?\b",
    any_year=r"\bcualquier\s+(?:ano|epoca|decada)\b",
    any_genre=r"\bcualquier\s+genero\b",
    fillers=wordset(
        "pelicula peliculas peli pelis cine genero algo alguna alguno quiero quisiera querria busco "
        "buscando muestra muestrame muestrenme recomienda recomiendame recomiendas sugiere sugiereme "
        "dame ver mirar esta noche hoy buena buenas bueno buenos por favor gracias una un unas unos el "
        "la los las de del que con para me mi yo muy mas anos ano"
    ),
)

CHINESE = Lexicon(
    code="zh",
    genres={
        "Action": ("动作", "武打", "功夫"),
        "Adventure": ("冒险", "探险"),
        "Animation": ("动画", "动漫", "卡通"),
        "Children's": ("儿童", "少儿", "孩子", "小孩", "亲子"),
        "Comedy": ("喜剧", "搞笑", "爆笑", "好笑", "幽默", "轻松"),
        "Crime": ("犯罪", "黑帮", "警匪", "罪案"),
        "Documentary": ("纪录片", "记录片", "纪实"),
        "Drama": ("剧情", "悲剧"),
        "Fantasy": ("奇幻", "魔幻", "玄幻"),
        "Film-Noir": ("黑色电影",),
        "Horror": ("恐怖", "鬼片", "灵异", "吓人"),
        "Musical": ("歌舞", "音乐剧"),
        "Mystery": ("悬疑", "推理", "侦探"),
        "Romance": ("爱情", "浪漫", "言情"),
        "Sci-Fi": ("科幻", "太空", "外星"),
        "Thriller": ("惊悚",),
        "War": ("战争", "二战"),
        "Western": ("西部",),
    },
    loose=frozenset({"功夫", "孩子", "小孩", "亲子", "好笑", "幽默", "轻松", "吓人", "外星", "侦探"}),
    negations=("不要", "不想", "不喜欢", "不爱", "不看", "不用", "不含", "不带", "不是", "不太", "不行",
               "不能", "不需要", r"(?<![特区分级类告性个识差离鉴辨派])别(?![的人])", "没有", "讨厌", "拒绝",
               r"除了(?![^，。；！？,.;!?]*[还也])", "算了", "免了", "无需"),
    clause_breaks=("但是", "但", "不过", "而是", "可是"),
    decades={r"二十年代": 1920, r"三十年代": 1930, r"四十年代": 1940, r"五十年代": 1950, r"六十年代": 1960,
             r"七十年代": 1970, r"八十年代": 1980, r"九十年代": 1990, r"(?:20|二[零〇])?[0零〇]{2}年代": 2000},
    decade_digits=r"(?<!\d)((?:19|20)?\d)0\s*年代",
    between=(rf"{Y}\s*年?\s*(?:到|至|-|–|~)\s*{Y}",),
    after=(rf"{Y}\s*年?\s*(?:以后|之后|后)",),
    since=(rf"{Y}\s*年?\s*(?:以来|起|开始)",),
    before=(rf"{Y}\s*年?\s*(?:以前|之前|前)",),
    until=(rf"(?:到|至){Y}\s*年?\s*为止",),
    single=(rf"{Y}\s*年(?!代)", r"(?<!\d)(\d\d)\s*年(?!代)"),  # "1995年", "95年"
    newer=r"新一点|新一些|更新|近一点|最近",
    older=r"老一点|老一些|更老|旧一点|经典",
    any_year=r"年代不限|不限年代|哪年都行|任何年代",
    any_genre=r"类型不限|不限类型|什么类型都行|任何类型",
    fillers=wordset(
        "电影 影片 片子 片 部 个 一部 几部 一些 一下 的 了 吧 啊 呀 吗 呢 我 你 想 想要 要 看 请 推荐 给 给我 来 "
        "找 有 点 些 和 或 或者 还 也 都 就 很 什么 可以 最好 好 好的 谢谢 能 帮 比较 那种 类型 的话 今晚 一点 "
        "年代 年 适合 风格 关于 类 型 部分 除了 都行 特别 非常 超级 有点 真的 一点儿"
    ),
    spaced=False,
)
# fmt: on

LEXICONS: dict[str, Lexicon] = {lex.code: lex for lex in (GERMAN, FRENCH, SPANISH, CHINESE)}


def lexicon_hits(text: str) -> Counter[str]:
    """Genre and negation words of each Latin-script lexicon in `text` (evidence for language detection).

    Words English shares ("drama", "horror", "no") are not evidence: they count for no lexicon.
    """
    from fusionrec.agent.genres import find_genres
    from fusionrec.agent.language import STOP_WORDS

    folded = fold(text)
    english = [(m.start, m.end) for m in find_genres(text)]
    hits: Counter[str] = Counter()
    for code, lex in LEXICONS.items():
        if not lex.spaced:
            continue
        hits[code] += sum(1 for m in lex.negation.finditer(folded) if m.group(0) not in STOP_WORDS["en"])
        for _, _, pattern in lex.genre_patterns:
            for m in pattern.finditer(folded):
                if not any(s < m.end() and m.start() < e for s, e in english):
                    hits[code] += 1
    return +hits
