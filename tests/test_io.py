"""Shared file helpers (mmlaw_utils.io): atomic writes, sha256 of files, marked regions."""

from __future__ import annotations

import hashlib
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmlaw_utils import io


def test_atomic_output_keeps_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "out.txt"
    io.atomic_write_text(path, "old\n")
    with pytest.raises(RuntimeError, match="boom"):
        with io.atomic_output(path, "w") as handle:
            handle.write("half of the new")
            raise RuntimeError("boom")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # no temp file left behind


def test_atomic_writes_create_folders_and_use_the_umask(tmp_path):
    text_path, bytes_path, table_path = tmp_path / "a" / "t.md", tmp_path / "b" / "x.bin", tmp_path / "c" / "t.parquet"
    io.atomic_write_text(text_path, "é\n")
    io.atomic_write_bytes(bytes_path, b"\x00\x01")
    io.atomic_write_table(pa.table({"x": [1, 2]}), table_path)
    assert text_path.read_bytes() == "é\n".encode("utf-8") and bytes_path.read_bytes() == b"\x00\x01"
    assert pq.read_table(table_path).column("x").to_pylist() == [1, 2]
    umask = os.umask(0)
    os.umask(umask)
    assert text_path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_sha256_file_matches_hashlib_across_read_blocks(tmp_path):
    path = tmp_path / "abc"
    path.write_bytes(b"abc")
    # FIPS 180-2 test vector
    assert io.sha256_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    big = tmp_path / "big"
    data = bytes(range(256)) * (5 * 2**20 // 256 + 3)  # more than one 4 MiB block
    big.write_bytes(data)
    assert io.sha256_file(big) == hashlib.sha256(data).hexdigest()
    digest = io.update_with_file(hashlib.sha256(b"prefix"), path)
    assert digest.hexdigest() == hashlib.sha256(b"prefixabc").hexdigest()


def test_replace_marked_region():
    start, end = "<!-- r:start -->", "<!-- r:end -->"
    text = f"top\n{start}\nold\n{end}\nbottom\n"
    assert io.replace_marked_region(text, "new\n", start, end) == f"top\n{start}\nnew\n{end}\nbottom\n"
    with pytest.raises(ValueError, match="markers"):
        io.replace_marked_region("no markers here", "x", start, end)
    with pytest.raises(ValueError, match="markers"):
        io.replace_marked_region(f"{end}\n{start}\n", "x", start, end)


def test_write_marked_region_replaces_or_appends(tmp_path):
    start, end = "<!-- s:start -->", "<!-- s:end -->"
    path = tmp_path / "README.md"
    io.write_marked_region(path, "one", start, end, append_if_missing=True, new_file_text="# Benchmarks\n")
    assert path.read_text() == f"# Benchmarks\n\n{start}\none\n{end}\n"
    path.write_text(path.read_text() + "tail\n")
    io.write_marked_region(path, "two\nlines\n", start, end)
    assert path.read_text() == f"# Benchmarks\n\n{start}\ntwo\nlines\n{end}\ntail\n"
    other = tmp_path / "other.md"
    other.write_text("no markers\n")
    with pytest.raises(ValueError, match="other.md"):
        io.write_marked_region(other, "x", start, end)
    assert other.read_text() == "no markers\n"
