"""zxcvbn's word ranks kept in the cache directory answer exactly as the lists do."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyward.scan import confidence as conf


def test_cached_word_ranks_give_every_rank_and_every_judgement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYWARD_CACHE_DIR", str(tmp_path))
    conf._ranked_words.cache_clear()
    try:
        built = conf._ranked_words()  # the first run ranks the lists and writes the file
        assert isinstance(built, dict)
        [written] = (tmp_path / "words").glob("ranks-*.txt")
        conf._ranked_words.cache_clear()
        cached = conf._ranked_words()  # a later run reads it back
        assert isinstance(cached, conf.WordRanks)
        assert all(cached.get(word) == rank for word, rank in built.items())
        assert [cached.get(w) for w in ("qzxjvkw", "a1b2c3d4e5", "zzzzzz", "ab")] == [
            built.get(w) for w in ("qzxjvkw", "a1b2c3d4e5", "zzzzzz", "ab")
        ]
        values = ["superS3cret", "AnotherStrongPass!", "Xq7#vLp2x9Tz", "drowssap2024", "ABCD1234"]
        judged_cached = [conf.guessability(v) for v in values]
        conf._ranked_words.cache_clear()
        written.write_text("damaged")  # unusable: ranked from the lists again
        assert isinstance(conf._ranked_words(), dict)
        assert [conf.guessability(v) for v in values] == judged_cached
    finally:
        conf._ranked_words.cache_clear()
