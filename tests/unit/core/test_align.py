"""Word-to-subword alignment and pooling, against hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import _byte_bpe, _wordpiece

from probes.core.align import EmptyInputError, encode, pool_words, token_word_index, word_spans


@pytest.fixture(scope="module", params=["bpe", "wordpiece"])
def tokenizer(request):
    return _byte_bpe() if request.param == "bpe" else _wordpiece()


def test_token_word_index_by_hand():
    text = "the tortoise won"
    spans = word_spans(text)
    assert spans == [(0, 3), (4, 12), (13, 16)]
    # byte-level BPE offsets carry the leading space; (0, 0) is a special token
    offsets = [(0, 0), (0, 3), (3, 6), (6, 12), (12, 16), (0, 0)]
    assert token_word_index(offsets, spans) == [-1, 0, 1, 1, 2, -1]


def test_words_split_into_several_subwords_map_back(tokenizer):
    text = "Unbelievably the tortoise overtook the hare"
    enc = encode(tokenizer, [text])
    ids = enc.inputs["input_ids"][0].tolist()
    word_of = enc.word_index[0].tolist()
    words = text.split()
    assert max(word_of) == len(words) - 1
    assert sum(1 for w in word_of if w == 0) >= 3  # the test is about multi-subword words
    for w, word in enumerate(words):
        pieces = [ids[i] for i, x in enumerate(word_of) if x == w]
        assert tokenizer.decode(pieces).strip().lower() == word.lower()


def test_pre_split_words_and_padding(tokenizer):
    enc = encode(tokenizer, [["The", "cat", "sat", "."], ["Birds", "that", "migrate", "south", "fly", "far"]])
    assert enc.n_words == [4, 6]
    mask = enc.attention_mask
    assert mask[0].sum() < mask[1].sum()  # right-padded
    assert (enc.word_index[mask == 0] == -1).all()
    assert enc.word_index[0].max() == 3 and enc.word_index[1].max() == 5


def test_truncation_is_reported(tokenizer):
    long_text = " ".join(["tortoise"] * 40)
    with pytest.warns(UserWarning, match="1 of 2 texts were truncated to 16 tokens"):
        enc = encode(tokenizer, [long_text, "The cat sat."], max_length=16)
    assert enc.truncated == [True, False]
    assert enc.words_lost[0] > 0 and enc.words_lost[1] == 0
    assert enc.inputs["input_ids"].shape[1] == 16


def test_empty_input_is_an_error(tokenizer):
    with pytest.raises(EmptyInputError, match="empty text list"):
        encode(tokenizer, [])


def test_words_must_appear_in_order():
    with pytest.raises(ValueError, match="not found"):
        word_spans("the cat", ["cat", "the"])


def test_pool_words_first_last_mean_by_hand():
    values = np.arange(14, dtype=np.float32).reshape(7, 2)
    example = np.array([0, 0, 0, 0, 1, 1, 1])
    word = np.array([-1, 0, 0, 1, 0, 0, 0])  # row 0 is special
    first, keys = pool_words(values, example, word, "first")
    assert keys.tolist() == [[0, 0], [0, 1], [1, 0]]
    assert first.tolist() == [[2, 3], [6, 7], [8, 9]]
    last, _ = pool_words(values, example, word, "last")
    assert last.tolist() == [[4, 5], [6, 7], [12, 13]]
    mean, _ = pool_words(values, example, word, "mean")
    assert mean.tolist() == [[3, 4], [6, 7], [10, 11]]
    with pytest.raises(ValueError, match="unknown pooling"):
        pool_words(values, example, word, "max")


def test_empty_text_is_reported_not_fatal():
    with pytest.warns(UserWarning, match="1 of 2 texts have no tokens"):
        enc = encode(_byte_bpe(), ["", "The cat sat."])
    assert enc.attention_mask[0].sum() == 0 and enc.n_words == [0, 3]
