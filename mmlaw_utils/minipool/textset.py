"""The held-out text set (§3.2): cleaned English Wikipedia prose from gensim's packaged dump sample.

Source: the MediaWiki XML sample that ships inside gensim's wheel
(``gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2``),
so the set builds offline from a pinned package. Pipeline:

1. keep main-namespace, non-redirect, non-disambiguation articles;
2. ``clean_wikitext``: parse with mwparserfromhell, drop templates, references, tables,
   files/categories, lists, maths and the closing sections (See also, References, ...),
   keep link text, and keep only paragraphs that read as clean prose;
3. split at ARTICLE level with a seeded hash of the title (``is_eval_title``): eval articles
   give the texts, the others are ``train_articles()`` for the miniature pool's prose core;
4. cut eval articles at paragraph boundaries into texts of ``MIN_WORDS``..``MAX_WORDS`` words;
5. drop exact and near duplicates (normalised hash, word-shingle Jaccard) and any text that
   shares a ``NGRAM``-word shingle with a training article (``find_contamination``).

``python -m mmlaw_utils textset build`` rewrites ``data/texts/wiki_heldout.jsonl`` and its
manifest bit for bit; ``python -m mmlaw_utils textset check`` verifies the committed sha256.
"""

from __future__ import annotations

import bz2
import functools
import hashlib
import html
import json
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pandas as pd

from mmlaw_utils.io import atomic_write_bytes, sha256_file

SAMPLE_FILE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
# sha256 of the sample as shipped by gensim==4.4.0; a different file means a different text set
SAMPLE_SHA256 = "a53f4648dec40467ebdcbc7a1307eddb51fe6e28e9309f6ebde81ba0d04bea2d"
SPLIT_SEED = "mmlaw-textset-v1"
EVAL_FRACTION = 0.40  # share of articles held out (by title hash); gives ~40% of the prose
MIN_WORDS = 50
MAX_WORDS = 500
TARGET_WORDS = 70  # a text is closed at the first paragraph boundary at or past this length
NGRAM = 13  # decontamination shingle length in words (GPT-3 style 13-gram test)
DEDUP_SHINGLE = 5  # words per shingle for near-duplicate detection among eval texts
DEDUP_JACCARD = 0.5  # near duplicate when shingle Jaccard similarity reaches this
SOURCE_PREFIX = "wikipedia:"

from mmlaw_utils.config import REPO_ROOT
DEFAULT_OUT = REPO_ROOT / "data" / "texts" / "wiki_heldout.jsonl"

# Sections after which an article is references, link lists and navigation, not prose.
STOP_SECTIONS = {
    "see also", "references", "notes", "external links", "further reading", "bibliography",
    "footnotes", "sources", "citations", "works cited", "notes and references",
    "references and notes", "explanatory notes", "general references", "literature",
    "gallery", "primary sources", "secondary sources", "cited sources", "citations and notes",
}

_DROP_MARK = "\x00"  # content we could not render faithfully: its paragraph is dropped
_LIST_MARK = "\x01"  # start of a list/indent line: the line is dropped
_PRON_MARK = "\x02"  # pronunciation: the whole enclosing parenthesis is dropped

_LINK_DROP_NS = {"file", "image", "category", "media"}
_TAG_DROP = {"ref", "references", "gallery", "table", "imagemap", "timeline", "graph", "mapframe",
             "templatestyles", "noinclude", "includeonly", "syntaxhighlight", "source", "pre"}
_TAG_DAMAGE = {"math", "chem", "ce", "hiero", "score", "code", "var", "tt"}
_TAG_BLOCK_OWN_PARAGRAPH = {"blockquote", "poem"}
_TEMPLATE_IGNORE_PREFIXES = (
    "cite", "citation", "sfn", "harv", "rp", "efn", "refn", "ref ", "reflist", "refbegin", "refend",
    "clarify", "dead link", "cn", "fact", "when", "who", "which", "by whom", "according to whom",
    "vague", "dubious", "failed verification", "page needed", "better source", "verify",
    "update", "original research", "weasel", "main", "see also", "further", "details", "about",
    "other uses", "redirect", "for", "distinguish", "use ", "pp-", "pp", "infobox", "navbox",
    "portal", "commons", "wiktionary", "div col", "clear", "coord", "authority control", "dmoz",
    "sister", "multiple image", "wayback", "webarchive", "google books", "short description",
    "good article", "featured", "engvar", "italic title", "lowercase", "dablink", "hatnote", "toc",
    "expand", "unreferenced", "refimprove", "more citations", "cleanup", "multiple issues",
    "spoken", "wikisource", "wikiquote", "listen", "bartable", "bar percent", "legend", "chart",
    "clade", "flagicon", "col-", "s-", "wikibooks", "wikinews", "wikiversity", "anchor",
    "dynamic list", "incomplete", "fix", "self-published", "primary source", "globalize",
    "citation needed", "page", "year needed", "nbsp", "-", "·", "•", "dot", "hlist", "flatlist",
    "image", "gallery", "listen", "note", "efn", "sup", "wide image", "quote box", "cquote",
    "rquote", "pull quote", "sidebar", "campaignbox", "succession", "start box", "end box",
    "persondata", "defaultsort", "lang-", "good", "dmy", "mdy", "spaced ndash", "snd",
)
_TEMPLATE_PRON = ("ipa", "ipac", "respell", "audio", "pronunciation", "pron")
_TEMPLATE_FIRST_ARG = {"nowrap", "small", "smaller", "big", "nobold", "noitalic", "nihongo",
                       "vanchor", "nts", "abbr", "flag", "flagcountry", "sc", "smallcaps", "em",
                       "strong", "var", "visible anchor", "keypress", "mono", "center", "nobr",
                       "lang", "transl", "script"}
_TEMPLATE_LITERAL = {"ndash": "–", "mdash": "—", "'": "'", "nbsp": " ", "!": _DROP_MARK,
                     "spaced ndash": " – ", "snd": " – ", "thinsp": " ", "'s": "'s"}
_UNIT_NAMES = {"km2": "km²", "sqkm": "km²", "m2": "m²", "sqmi": "sq mi", "sqft": "sq ft",
               "C": "°C", "F": "°F", "km/h": "km/h", "mph": "mph", "acre": "acres"}
_RANGE_WORDS = {"-": "–", "–": "–", "to": " to ", "and": " and ", "or": " or ", "x": " × ",
                "by": " by ", "to(-)": " to ", "+/-": " ± "}

_WORD_RE = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Article:
    """One main-namespace article of the dump: title, ids, raw wikitext."""

    title: str
    page_id: int
    revision_id: int
    wikitext: str


def sample_path() -> Path:
    """Path of the enwiki dump sample inside the installed gensim package."""
    import gensim

    path = Path(gensim.__file__).parent / "test" / "test_data" / SAMPLE_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"the Wikipedia sample {SAMPLE_FILE!r} is not in gensim at {path.parent}; "
            "install the pinned gensim (pip install -e .)"
        )
    return path


def read_dump(path: str | Path) -> list[Article]:
    """Main-namespace, non-redirect articles of a MediaWiki XML dump (.xml or .xml.bz2), in file order."""
    opener = bz2.open if str(path).endswith(".bz2") else open
    with opener(path, "rb") as handle:
        root = ET.fromstring(handle.read())
    ns = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""
    articles = []
    for page in root.iter(f"{ns}page"):
        if page.findtext(f"{ns}ns") != "0" or page.find(f"{ns}redirect") is not None:
            continue
        revision = page.find(f"{ns}revision")
        articles.append(Article(
            title=page.findtext(f"{ns}title"),
            page_id=int(page.findtext(f"{ns}id")),
            revision_id=int(revision.findtext(f"{ns}id")),
            wikitext=revision.findtext(f"{ns}text") or "",
        ))
    return articles


# ---------------------------------------------------------------- wikitext cleaning


def _positional(template) -> list[str]:
    return [str(p.value).strip() for p in template.params if not p.showkey]


def _render_template(template) -> str:
    name = str(template.name).strip().lower().replace("_", " ")
    args = _positional(template)
    if name in _TEMPLATE_LITERAL:
        return _TEMPLATE_LITERAL[name]
    if name.startswith("formatnum:"):
        return str(template.name).split(":", 1)[1].strip()
    if name.startswith(_TEMPLATE_PRON):
        return _PRON_MARK
    if name in ("convert", "cvt") and len(args) >= 2:
        if len(args) >= 4 and args[1] in _RANGE_WORDS:
            return f"{args[0]}{_RANGE_WORDS[args[1]]}{args[2]} {_UNIT_NAMES.get(args[3], args[3])}"
        return f"{args[0]} {_UNIT_NAMES.get(args[1], args[1])}"
    if name in _TEMPLATE_FIRST_ARG or name in ("lang", "transl"):
        if not args:
            return ""
        # lang/transl put the language code first and the text last
        text = args[-1] if name in ("lang", "transl", "script") else args[0]
        return _render(text)
    if name.startswith("lang-") and args:
        return _render(args[-1])
    if name in ("as of",) and args and args[0].isdigit():
        return f"As of {args[0]}" if len(args) == 1 else _DROP_MARK
    if name in ("circa", "c.") and args:
        return f"c. {args[0]}"
    if name in ("quote", "blockquote", "quotation") and (args or template.has("text")):
        text = str(template.get("text").value) if template.has("text") else args[0]
        return "\n\n" + _render(text) + "\n\n"
    if name.startswith(_TEMPLATE_IGNORE_PREFIXES):
        return ""
    return _DROP_MARK


def _render_nodes(code) -> str:
    import mwparserfromhell.nodes as nodes

    out: list[str] = []
    for node in code.nodes:
        if isinstance(node, nodes.Text):
            out.append(str(node.value))
        elif isinstance(node, nodes.Comment | nodes.Argument):
            continue
        elif isinstance(node, nodes.HTMLEntity):
            out.append(node.normalize())
        elif isinstance(node, nodes.Heading):
            title = re.sub(r"\s+", " ", _render_nodes(node.title).replace(_DROP_MARK, "")).strip()
            out.append(f"\n\n\x03{title}\n\n")
        elif isinstance(node, nodes.Wikilink):
            target = str(node.title).strip()
            prefix = target.lstrip(":").split(":", 1)[0].strip().lower() if ":" in target else ""
            if prefix in _LINK_DROP_NS:
                continue
            if node.text is not None:
                out.append(_render_nodes(node.text))
            else:
                shown = target.lstrip(":")
                if prefix:  # interwiki / sister project link: show the page name
                    shown = shown.split(":", 1)[1]
                out.append(shown.split("#", 1)[0] or shown.split("#", 1)[-1])
        elif isinstance(node, nodes.ExternalLink):
            if node.title is not None:
                out.append(_render_nodes(node.title))
            elif not node.brackets:
                out.append(_DROP_MARK)  # a bare URL in running text
        elif isinstance(node, nodes.Template):
            out.append(_render_template(node))
        elif isinstance(node, nodes.Tag):
            tag = str(node.tag).strip().lower()
            if node.wiki_markup in ("*", "#", ";", ":"):
                out.append(f"\n{_LIST_MARK}")
            elif tag in _TAG_DROP:
                continue
            elif tag in _TAG_DAMAGE:
                out.append(_DROP_MARK)
            elif tag in ("br", "hr"):
                out.append("\n" if tag == "hr" else " ")
            elif node.contents is not None:
                inner = _render_nodes(node.contents)
                out.append(f"\n\n{inner}\n\n" if tag in _TAG_BLOCK_OWN_PARAGRAPH else inner)
        else:
            out.append(_DROP_MARK)
    return "".join(out)


def _render(wikitext: str) -> str:
    import mwparserfromhell

    return _render_nodes(mwparserfromhell.parse(wikitext))


_REF_RE = re.compile(r"<ref\b[^>]*/>|<ref\b[^>]*>.*?</ref\s*>", re.IGNORECASE | re.DOTALL)
_COMMENT_RE = re.compile(r"<!--.*?-->", re.DOTALL)
_PRON_PAREN_RE = re.compile(r"\s?\(([^()]*\x02[^()]*)\)")
_EMPTY_PAREN_RE = re.compile(r"\(\s*(?:[,;:–—-]\s*)*\)")
_LEADING_SEP_RE = re.compile(r"\(\s*[,;:]\s*")
_SPACE_BEFORE_PUNCT_RE = re.compile(r"\s+([,.;:!?)\]])")
_REMNANT_RE = re.compile(r"&[a-zA-Z]+;|&#\d+;|\{\{|\}\}|\[\[|\]\]|\{\||\|\}|<[a-zA-Z/!][^>]*>|https?://|www\.|'''?|==|\|")
_SENTENCE_END = (".", "!", "?", '"', "”", "’", "'", ")")


def _drop_pronunciation(match: re.Match) -> str:
    """Drop the ';'-separated parts of a parenthesis that held a pronunciation, and it if emptied."""
    kept = [part.strip() for part in match.group(1).split(";") if _PRON_MARK not in part]
    kept = [part for part in kept if part]
    return f" ({'; '.join(kept)})" if kept else ""


def _tidy_paragraph(text: str) -> str:
    text = html.unescape(text)  # entities inside link targets are not parsed as entities
    text = _PRON_PAREN_RE.sub(_drop_pronunciation, text).replace(_PRON_MARK, "")
    text = re.sub(r"[ \t\u00a0\u2009\u200b]+", " ", text)
    for _ in range(2):  # removing an inner empty parenthesis can empty the outer one
        text = _EMPTY_PAREN_RE.sub("", text)
    text = _LEADING_SEP_RE.sub("(", text)
    text = _SPACE_BEFORE_PUNCT_RE.sub(r"\1", text)
    text = re.sub(r"\(\s+", "(", text)
    text = re.sub(r"([,;])\1+", r"\1", text)
    return re.sub(r"\s+", " ", text).strip()


def _is_prose(paragraph: str) -> bool:
    words = paragraph.split()
    if len(words) < 8 or _DROP_MARK in paragraph or _REMNANT_RE.search(paragraph):
        return False
    if not paragraph.endswith(_SENTENCE_END) or paragraph.endswith(":"):
        return False
    if paragraph.count("(") != paragraph.count(")") or paragraph.count('"') % 2:
        return False
    letters = sum(ch.isalpha() for ch in paragraph)
    return letters >= 0.6 * len(paragraph) and paragraph[0].isupper() | paragraph[0].isdigit()


def clean_paragraphs(raw: str) -> list[str]:
    """Prose paragraphs of an article's wikitext, in order, markup removed (see module doc)."""
    text = _COMMENT_RE.sub("", raw)
    text = _REF_RE.sub("", text)  # references carry no prose; removing them first is faster
    text = re.sub(r"__[A-Z]+__", "", text)
    rendered = _render(text)
    paragraphs: list[str] = []
    for block in re.split(r"\n\s*\n", rendered):
        lines = []
        for line in block.split("\n"):
            stripped = line.strip()
            if stripped.startswith("\x03"):
                if stripped[1:].strip().lower() in STOP_SECTIONS:
                    return paragraphs
                continue  # headings separate paragraphs but are not prose
            if stripped.startswith(_LIST_MARK) or stripped.replace(_DROP_MARK, "").strip() == "":
                continue
            lines.append(stripped)
        paragraph = _tidy_paragraph(" ".join(lines))
        if _is_prose(paragraph):
            paragraphs.append(paragraph)
    return paragraphs


def clean_wikitext(raw: str) -> str:
    """Plain prose of a wikitext article: clean paragraphs joined by blank lines (see module doc)."""
    return "\n\n".join(clean_paragraphs(raw))


# ---------------------------------------------------------------- split and chunking


def title_slug(title: str) -> str:
    """Lower-case ASCII slug of an article title, e.g. ``Animalia (book)`` -> ``animalia-book``."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "untitled"


def split_score(title: str, seed: str = SPLIT_SEED) -> float:
    """Seeded hash of a title mapped to [0, 1); the article is held out when below EVAL_FRACTION."""
    digest = hashlib.sha256(f"{seed}\x1f{title}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def is_eval_title(title: str, fraction: float = EVAL_FRACTION, seed: str = SPLIT_SEED) -> bool:
    """Whether the article with this title belongs to the held-out (evaluation) side."""
    return split_score(title, seed) < fraction


def _usable(article: Article) -> bool:
    return not article.title.endswith("(disambiguation)")


@functools.lru_cache(maxsize=2)
def _cleaned_articles(path: str) -> tuple[tuple[Article, tuple[str, ...]], ...]:
    from tqdm.auto import tqdm

    articles = [a for a in read_dump(path) if _usable(a)]
    return tuple(
        (article, tuple(clean_paragraphs(article.wikitext)))
        for article in tqdm(articles, desc="cleaning wikitext", unit="article", disable=None)
    )


def cleaned_articles() -> tuple[tuple[Article, tuple[str, ...]], ...]:
    """Every usable article of the sample with its clean prose paragraphs (parsed once per process)."""
    return _cleaned_articles(str(sample_path()))


def train_articles() -> list[tuple[str, str]]:
    """(title, clean text) of the non-held-out articles: training prose, disjoint from eval by title."""
    return [(a.title, "\n\n".join(ps)) for a, ps in cleaned_articles()
            if ps and not is_eval_title(a.title)]


def eval_articles() -> list[tuple[str, str]]:
    """(title, clean text) of the held-out articles the text set is cut from."""
    return [(a.title, "\n\n".join(ps)) for a, ps in cleaned_articles()
            if ps and is_eval_title(a.title)]


def _split_long(paragraph: str, max_words: int) -> list[str]:
    """Cut a paragraph longer than max_words at sentence ends into near-equal pieces."""
    words = paragraph.split()
    if len(words) <= max_words:
        return [paragraph]
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9\"“(])", paragraph)
    n_pieces = -(-len(words) // max_words)
    budget = len(words) / n_pieces
    pieces, current = [], []
    for sentence in sentences:
        if current and len(" ".join(current + [sentence]).split()) > budget:
            pieces.append(" ".join(current))
            current = []
        current.append(sentence)
    if current:
        pieces.append(" ".join(current))
    # a single sentence past max_words cannot be cut at a sentence end: leave it out
    return [p for p in pieces if len(p.split()) <= max_words]


def chunk_paragraphs(paragraphs: Iterable[str], min_words: int = MIN_WORDS,
                     max_words: int = MAX_WORDS, target_words: int = TARGET_WORDS) -> list[str]:
    """Group consecutive paragraphs into texts of min_words..max_words words, closing at target_words."""
    units = [piece for p in paragraphs for piece in _split_long(p, max_words)]
    texts: list[list[str]] = []
    current: list[str] = []
    n_current = 0
    for unit in units:
        n_unit = len(unit.split())
        if current and n_current + n_unit > max_words:
            texts.append(current)
            current, n_current = [], 0
        current.append(unit)
        n_current += n_unit
        if n_current >= target_words:
            texts.append(current)
            current, n_current = [], 0
    if current:
        if n_current < min_words and texts and \
                sum(len(u.split()) for u in texts[-1]) + n_current <= max_words:
            texts[-1].extend(current)  # a short tail joins the text before it
        else:
            texts.append(current)
    joined = ["\n\n".join(t) for t in texts]
    return [t for t in joined if min_words <= len(t.split()) <= max_words]


# ---------------------------------------------------------------- duplicates and contamination


def normalised_words(text: str) -> list[str]:
    """Lower-cased word tokens (\\w+), punctuation and case ignored: the unit of the overlap tests."""
    return _WORD_RE.findall(text.lower())


def word_shingles(text: str, n: int) -> set[str]:
    """Set of n-word shingles of the normalised text (the whole text if shorter than n)."""
    words = normalised_words(text)
    if len(words) < n:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}


def _as_pairs(docs, what: str) -> list[tuple[str, str]]:
    if isinstance(docs, pd.DataFrame):
        id_col = "text_id" if "text_id" in docs.columns else docs.columns[0]
        return list(zip(docs[id_col].astype(str), docs["text"], strict=True))
    if isinstance(docs, Mapping):
        return [(str(k), v) for k, v in docs.items()]
    pairs = []
    for i, doc in enumerate(docs):
        if isinstance(doc, str):
            pairs.append((f"{what}-{i}", doc))
        else:
            doc_id, text = doc
            pairs.append((str(doc_id), text))
    for doc_id, text in pairs:
        if not isinstance(text, str):
            raise TypeError(f"{what} {doc_id!r}: text is {type(text).__name__}, not str")
    return pairs


def find_contamination(eval_texts, train_docs, ngram: int = NGRAM) -> pd.DataFrame:
    """Eval texts sharing at least one normalised ``ngram``-word shingle with a training document.

    ``eval_texts`` / ``train_docs``: a DataFrame with ``text_id`` (or first column) and ``text``,
    a mapping id -> text, or an iterable of texts or (id, text) pairs; training docs are streamed.
    Returns one row per contaminated (eval text, train doc) pair with columns ``text_id``,
    ``doc_id``, ``n_shared`` (distinct shared shingles) and ``example`` (one shared shingle);
    empty when clean. Texts shorter than ``ngram`` words are compared as one whole shingle.
    """
    index: dict[str, list[str]] = defaultdict(list)
    short: dict[str, list[str]] = defaultdict(list)  # eval texts under ngram words: substring test
    for text_id, text in _as_pairs(eval_texts, "eval text"):
        words = normalised_words(text)
        if len(words) < ngram:
            if words:
                short[" ".join(words)].append(text_id)
            continue
        for i in range(len(words) - ngram + 1):
            index[" ".join(words[i:i + ngram])].append(text_id)
    rows = []
    pairs = train_docs.items() if isinstance(train_docs, Mapping) else train_docs
    if isinstance(train_docs, pd.DataFrame):
        pairs = _as_pairs(train_docs, "train doc")
    for j, doc in enumerate(pairs):
        doc_id, text = (f"train doc-{j}", doc) if isinstance(doc, str) else doc
        if not isinstance(text, str):
            raise TypeError(f"train doc {doc_id!r}: text is {type(text).__name__}, not str")
        words = normalised_words(text)
        hits: dict[str, list[str]] = defaultdict(list)
        seen = set()
        for i in range(len(words) - ngram + 1):
            gram = " ".join(words[i:i + ngram])
            if gram in index and gram not in seen:
                seen.add(gram)
                for text_id in index[gram]:
                    hits[text_id].append(gram)
        if short:
            joined = " " + " ".join(words) + " "
            for gram, ids in short.items():
                if f" {gram} " in joined:
                    for text_id in ids:
                        hits[text_id].append(gram)
        for text_id, grams in hits.items():
            rows.append({"text_id": text_id, "doc_id": str(doc_id),
                         "n_shared": len(set(grams)), "example": grams[0]})
    return pd.DataFrame(rows, columns=["text_id", "doc_id", "n_shared", "example"])


def find_near_duplicates(texts: list[str], shingle: int = DEDUP_SHINGLE,
                         jaccard: float = DEDUP_JACCARD) -> list[tuple[int, int, float]]:
    """(later, earlier, similarity) for each text that repeats an earlier one.

    Exact repeats after normalisation (case, punctuation, spacing) have similarity 1.0; near
    repeats have word-shingle Jaccard similarity >= ``jaccard`` with an earlier kept text.
    """
    kept_shingles: list[set[str]] = []
    kept_index: list[int] = []
    by_shingle: dict[str, list[int]] = defaultdict(list)
    by_hash: dict[str, int] = {}
    found = []
    for i, text in enumerate(texts):
        key = hashlib.sha256(" ".join(normalised_words(text)).encode()).hexdigest()
        if key in by_hash:
            found.append((i, by_hash[key], 1.0))
            continue
        shingles = word_shingles(text, shingle)
        overlap: dict[int, int] = defaultdict(int)
        for s in shingles:
            for k in by_shingle.get(s, ()):
                overlap[k] += 1
        best = max(((n / len(shingles | kept_shingles[k]), k) for k, n in overlap.items()),
                   default=(0.0, -1))
        if best[0] >= jaccard:
            found.append((i, kept_index[best[1]], best[0]))
            continue
        by_hash[key] = i
        for s in shingles:
            by_shingle[s].append(len(kept_shingles))
        kept_shingles.append(shingles)
        kept_index.append(i)
    return found


# ---------------------------------------------------------------- build


def manifest_path_for(out_path: str | Path) -> Path:
    """Manifest written beside a text set: ``x.jsonl`` -> ``x.manifest.json``."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.name.rsplit(".", 1)[0] + ".manifest.json")


def _version(package: str) -> str:
    return metadata.version(package)


def build_frame() -> tuple[pd.DataFrame, dict]:
    """The text set as a frame (text_id, text, source) plus the build statistics for the manifest."""
    path = sample_path()
    actual = sha256_file(path)
    if actual != SAMPLE_SHA256:
        raise ValueError(f"{path}: sha256 {actual} is not the pinned sample's {SAMPLE_SHA256}; "
                         "install the pinned gensim to rebuild the same text set")
    articles = cleaned_articles()
    eval_side = [(a, ps) for a, ps in articles if ps and is_eval_title(a.title)]
    train_docs = train_articles()
    candidates = []
    per_article = {}
    for article, paragraphs in eval_side:
        chunks = chunk_paragraphs(paragraphs)
        slug = title_slug(article.title)
        per_article[article.title] = {"title": article.title, "page_id": article.page_id,
                                      "revision_id": article.revision_id, "n_candidates": len(chunks)}
        for k, chunk in enumerate(chunks):
            candidates.append({"text_id": f"wiki-{slug}-{k:03d}", "text": chunk,
                               "source": f"{SOURCE_PREFIX}{article.title}"})
    frame = pd.DataFrame(candidates, columns=["text_id", "text", "source"])
    if frame["text_id"].duplicated().any():
        raise ValueError(f"{path}: two eval articles share a slug: "
                         f"{frame['text_id'][frame['text_id'].duplicated()].tolist()[:5]}")
    dups = find_near_duplicates(frame["text"].tolist())
    dup_rows = sorted({later for later, _, _ in dups})
    frame = frame.drop(index=dup_rows).reset_index(drop=True)
    contaminated = find_contamination(frame, train_docs)
    bad_ids = set(contaminated["text_id"])
    frame = frame[~frame["text_id"].isin(bad_ids)].reset_index(drop=True)
    n_words = frame["text"].str.split().str.len()
    for title, info in per_article.items():
        info["n_texts"] = int((frame["source"] == f"{SOURCE_PREFIX}{title}").sum())
    from mmlaw_utils.texts import dataset_fingerprint

    stats = {
        "n_texts": int(len(frame)),
        "dataset_fingerprint": dataset_fingerprint(frame["text_id"], frame["text"]),
        "words": {"min": int(n_words.min()), "max": int(n_words.max()),
                  "mean": round(float(n_words.mean()), 2), "median": float(n_words.median()),
                  "total": int(n_words.sum())},
        "dropped": {"near_duplicates": len(dup_rows), "contaminated": len(bad_ids)},
        "source": {"package": "gensim", "version": _version("gensim"),
                   "file": f"gensim/test/test_data/{SAMPLE_FILE}", "sha256": actual},
        "build": {"cleaner": f"mwparserfromhell=={_version('mwparserfromhell')}",
                  "split_seed": SPLIT_SEED, "eval_fraction": EVAL_FRACTION,
                  "min_words": MIN_WORDS, "max_words": MAX_WORDS, "target_words": TARGET_WORDS,
                  "contamination_ngram": NGRAM, "dedup_shingle": DEDUP_SHINGLE,
                  "dedup_jaccard": DEDUP_JACCARD},
        "n_articles": {"eval": len(eval_side), "train": len(train_docs),
                       "train_words": sum(len(t.split()) for _, t in train_docs)},
        "eval_articles": list(per_article.values()),
        "train_articles": [title for title, _ in train_docs],
    }
    return frame, stats


def serialise_jsonl(frame: pd.DataFrame) -> bytes:
    """Deterministic JSON-lines bytes of a text frame: one {text_id, text, source} object per line."""
    lines = [json.dumps({"text_id": i, "text": t, "source": s}, ensure_ascii=False) + "\n"
             for i, t, s in zip(frame["text_id"], frame["text"], frame["source"], strict=True)]
    return "".join(lines).encode("utf-8")


def attribution_markdown(manifest: dict) -> str:
    """Licence and provenance note for a built text set, filled from its manifest."""
    src, build, words = manifest["source"], manifest["build"], manifest["words"]
    eval_rows = "\n".join(f"| {a['title']} | {a['revision_id']} | {a['n_texts']} |"
                           for a in manifest["eval_articles"])
    return f"""# Held-out text set: attribution and licence

`{manifest['file']}` (sha256 `{manifest['sha256']}`) holds {manifest['n_texts']} texts of
{words['min']}-{words['max']} words (mean {words['mean']}) cut from {manifest['n_articles']['eval']}
English Wikipedia articles. It is generated by `python -m mmlaw_utils textset build`; this note
and `{manifest_path_for(manifest['file']).name}` are written by the same command.

## Licence

The texts are excerpts of English Wikipedia articles, licensed under the Creative Commons
Attribution-ShareAlike licence (CC BY-SA 3.0, https://creativecommons.org/licenses/by-sa/3.0/)
and the GNU Free Documentation License. The authors are the contributors to each article; the
revision of each article used is listed below, and its history (the list of authors) is at
`https://en.wikipedia.org/w/index.php?oldid=<revision id>&action=history`. The texts were
modified (see Cleaning) and are shared under the same licence. The `source` column of every
text names its article (`wikipedia:<title>`).

## Source

The MediaWiki XML dump sample shipped inside the `{src['package']}=={src['version']}` wheel,
`{src['file']}` (sha256 `{src['sha256']}`), a shortened 2016 export (revisions up to May 2016) of the first
English Wikipedia pages. Only main-namespace articles that are not redirects or disambiguation
pages are used.

## Cleaning and split

- Wikitext parsed with `{build['cleaner']}`. Removed: templates (infoboxes, citations,
  navigation, maintenance tags; a few inline ones such as `convert` and `lang` are rendered as
  their text), references, HTML comments, tables, files, images, categories, galleries,
  lists and indented lines, headings, bare URLs, and everything from the first closing section
  (See also, References, Notes, External links, Further reading, ...) on. Link markup is
  replaced by the link text. Pronunciation parentheses and emptied parentheses are removed.
- Paragraphs that held maths, chemistry or code, or a template that could not be rendered as
  text, are dropped, as are paragraphs that do not read as prose (fewer than 8 words, not
  ending a sentence, unbalanced brackets or quotes, mostly non-letters).
- Split at article level: an article is held out when a seeded SHA-256 of its title
  (seed `{build['split_seed']}`) falls below {build['eval_fraction']}. The other
  {manifest['n_articles']['train']} articles ({manifest['n_articles']['train_words']} words of clean
  prose) are `mmlaw_utils.minipool.textset.train_articles()`, the training prose core, and never
  contribute a text.
- Held-out articles are cut at paragraph boundaries into texts of {build['min_words']} to
  {build['max_words']} words (a text closes at the first paragraph end past
  {build['target_words']} words; longer paragraphs are cut at sentence ends).
- Deduplicated: {manifest['dropped']['near_duplicates']} text(s) dropped as exact (normalised) or
  near duplicates ({build['dedup_shingle']}-word shingle Jaccard >= {build['dedup_jaccard']}), and
  {manifest['dropped']['contaminated']} text(s) dropped because they share a
  {build['contamination_ngram']}-word shingle with a training article.

## Held-out articles

| article | revision id | texts |
| --- | --- | --- |
{eval_rows}

The training articles are listed under `train_articles` in the manifest.
"""


def build_textset(out_path: str | Path = DEFAULT_OUT) -> pd.DataFrame:
    """Build the text set into ``out_path`` (jsonl) with its manifest and ATTRIBUTION.md, atomically."""
    out_path = Path(out_path)
    frame, stats = build_frame()
    data = serialise_jsonl(frame)
    manifest = {"file": out_path.name, "sha256": hashlib.sha256(data).hexdigest(), **stats}
    atomic_write_bytes(out_path, data)
    atomic_write_bytes(manifest_path_for(out_path),
                       (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    atomic_write_bytes(out_path.with_name(out_path.name.rsplit(".", 1)[0] + ".ATTRIBUTION.md"),
                       attribution_markdown(manifest).encode("utf-8"))
    return frame


def check_textset(path: str | Path = DEFAULT_OUT) -> str:
    """Verify a text set file against its manifest's sha256; return the digest or raise ValueError."""
    path = Path(path)
    manifest_file = manifest_path_for(path)
    if not path.is_file():
        raise FileNotFoundError(f"text set {path} does not exist; run python -m mmlaw_utils textset build")
    if not manifest_file.is_file():
        raise FileNotFoundError(f"manifest {manifest_file} does not exist")
    expected = json.loads(manifest_file.read_text(encoding="utf-8"))["sha256"]
    actual = sha256_file(path)
    if actual != expected:
        raise ValueError(f"{path}: sha256 {actual} does not match {manifest_file} ({expected})")
    return actual
