"""The labelled corpus, small and seeded: verdicts agree with the documented thresholds."""

from __future__ import annotations

from collections import Counter

from image_corpus import cases, verdict_of

from analyzer._images.options import Thresholds


def test_the_small_corpus_gets_the_expected_verdicts() -> None:
    th = Thresholds()
    corpus = cases(3, 256, seed=5, th=th, server_sizes=(512,))
    families = Counter(case.family for case in corpus)
    # Every family of the corpus is present, and the changed cases are not a token few.
    assert set(families) >= {"colour cast", "noise", "inverted patch", "shifted patch",
                             "text strokes", "re-encode", "1-pixel shift", "crop",
                             "server re-render", "identity"}  # fmt: skip
    expected = Counter(case.expected for case in corpus)
    assert expected["changed"] >= 30 and expected["visually-identical"] >= 25
    wrong = [
        (case.family, case.name, case.picture, case.expected, got)
        for case in corpus
        if (got := verdict_of(case, th)) != case.expected
    ]
    assert len(wrong) <= 0.02 * len(corpus), wrong


def test_dense_local_changes_are_never_averaged_away() -> None:
    th = Thresholds()
    corpus = cases(2, 256, seed=11, th=th, server_sizes=())
    dense = [c for c in corpus if c.family == "inverted patch" or c.name == "dark"]
    assert len(dense) == 8
    assert all(verdict_of(case, th) == "changed" for case in dense)
    invisible = [c for c in corpus if c.family == "noise" and c.name in ("+-1", "+-2", "+-3")]
    assert len(invisible) == 6
    assert all(verdict_of(case, th) == "visually-identical" for case in invisible)
