"""The built-in corpus: a split by whole topic that never overlaps, reproducible, with its hash."""

from __future__ import annotations

import hashlib

import pytest

from sparsesim.core.errors import InputError
from sparsesim.workloads.corpus import corpus_part, corpus_topics, sentence_pairs, text_file

topics = pytest.importorskip("pydoc_data.topics", reason="this Python ships no pydoc_data").topics


def test_parts_partition_the_topics_by_whole_topic():
    calib, evaluation = corpus_topics("calib"), corpus_topics("eval")
    assert not set(calib) & set(evaluation)
    assert sorted(calib + evaluation) == sorted(topics)
    # every fifth of the sorted names: with 79 topics, 16 calibrate (indices 0, 5, ..., 75)
    assert len(calib) == -(-len(topics) // 5)
    assert calib[:2] == sorted(topics)[0:1] + sorted(topics)[5:6]


def test_no_paragraph_of_one_part_is_in_the_other():
    calib, evaluation = corpus_part("calib"), corpus_part("eval")
    paragraphs = {p for p in calib.text.split("\n\n") if len(p) > 200}  # long ones: short headings may repeat
    assert paragraphs and not any(p in evaluation.text for p in paragraphs)
    assert calib.sha256 == hashlib.sha256(calib.text.encode()).hexdigest() != evaluation.sha256
    assert corpus_part("eval") == evaluation  # same CPython, same text


def test_sentence_pairs_are_verbatim_prose():
    evaluation = corpus_part("eval")
    pairs = sentence_pairs(evaluation, limit=20)
    assert len(pairs) == 20
    for first, second in pairs:
        assert first.endswith(".") and second[0].isupper()
        assert " ".join(first.split()[:4]) in " ".join(evaluation.text.split())


def test_bad_parts_and_files_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="part: unknown corpus part 'test'"):
        corpus_topics("test")
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(InputError, match="text: .*empty.txt: is empty"):
        text_file(tmp_path / "empty.txt")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InputError, match="calib_text: .*cannot read UTF-8"):
        text_file(tmp_path / "bin.txt", arg="calib_text")
