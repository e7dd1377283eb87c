"""Generated probing tasks, minimal pairs and the loaders for user data."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from probes.probing.datasets import TASKS, DatasetError, ProbingDataset, agreement_pairs, generate
from probes.probing.datasets.grammar import CONTENT, lexicon
from probes.probing.datasets.loaders import load_blimp, load_conllu, load_table


@pytest.mark.parametrize("task", TASKS)
def test_each_task_makes_thousands_of_balanced_examples_in_seconds(task):
    start = time.perf_counter()
    ds = generate(task, 3000, seed=0)
    assert time.perf_counter() - start < 10  # generous: ~0.05-0.3 s here
    assert len(ds) == 3000 and set(ds.split) == {"train", "test"}
    counts = ds.counts()
    if task != "pos":
        assert max(counts.values()) / min(counts.values()) < 1.2, counts
    assert generate(task, 50, seed=0).words == generate(task, 50, seed=0).words  # fixed seed, same data


def test_labels_are_true_by_construction():
    lex = lexicon()
    singular = {n[0] for n in lex["nouns"]}
    plural = {n[1] for n in lex["nouns"]}
    ds = generate("subject_number", 200)
    for words, label in zip(ds.words, ds.labels):
        head = next(w for w in words if w in singular | plural)  # the first noun heads the main subject
        assert (head in singular) == (label == "singular")
    ds = generate("pos", 50)
    for words, tags in zip(ds.words, ds.labels):
        assert tags[-1] == "PUNCT" and tags[0] == "DET" and "VERB" in tags
    ds = generate("bigram_shift", 200)
    originals = {tuple(w) for w, l in zip(ds.words, ds.labels) if l == "original"}
    assert all(w[-1] == "." for w in ds.words) and len(originals) > 50
    depth = generate("depth", 90)
    for words, label in zip(depth.words, depth.labels):
        assert words.count("that") + words.count("who") >= int(label)


def test_lexical_split_keeps_test_words_out_of_training():
    ds = generate("pos", 1500, lexical_split=True)
    lex = lexicon()
    content = set()
    for key in CONTENT:
        for item in lex[key]:
            content |= set(item) if isinstance(item, list) else {item}
    train = {w for w, s in zip(ds.words, ds.split) if s == "train" for w in w} & content
    test = {w for w, s in zip(ds.words, ds.split) if s == "test" for w in w} & content
    assert train and test and not (train & test)


def test_agreement_pairs_in_blimp_format(tmp_path):
    rows = agreement_pairs(40)
    assert {"sentence_good", "sentence_bad", "UID"} <= set(rows[0])
    for row in rows:
        good, bad = row["sentence_good"].split(), row["sentence_bad"].split()
        assert len(good) == len(bad) and sum(a != b for a, b in zip(good, bad)) == 1  # one verb differs
    assert {r["UID"] for r in rows} == {"agreement_pp_attractor", "agreement_rc_attractor"}
    path = write_blimp(rows, tmp_path / "pairs.jsonl")
    assert load_blimp(path) == rows
    (tmp_path / "bad.jsonl").write_text('{"sentence_good": "a b ."}\n')
    with pytest.raises(DatasetError, match="needs sentence_bad"):
        load_blimp(tmp_path / "bad.jsonl")


def test_simple_agreement_pairs_put_the_verb_right_after_the_subject():
    from probes.probing.datasets import simple_agreement_pairs

    rows = simple_agreement_pairs(40)
    for row in rows:
        good, bad = row["sentence_good"].split(), row["sentence_bad"].split()
        assert len(good) == len(bad) and [i for i, (a, b) in enumerate(zip(good, bad)) if a != b] == [len(good) - 2]
        assert not {"that", "near", "behind"} & set(good)  # no attractor between subject and verb
    assert [r["subject_number"] for r in rows[:4]] == ["singular", "plural", "singular", "plural"]
    singular = [r["sentence_good"].split()[-2] for r in rows if r["subject_number"] == "singular"]
    assert all(v.endswith("s") for v in singular)  # "sleeps", "runs": the agreeing form of a singular subject


def test_copula_agreement_pairs_differ_only_in_the_copula_that_agrees_with_the_subject():
    from probes.probing.datasets import copula_agreement_pairs

    rows = copula_agreement_pairs(40)
    for row in rows:
        good, bad = row["sentence_good"].split(), row["sentence_bad"].split()
        assert [i for i, (a, b) in enumerate(zip(good, bad)) if a != b] == [len(good) - 2]
        assert good[-2] == ("is" if row["subject_number"] == "singular" else "are")
        assert good[0][0].isupper() and good[-1].endswith(".")
    assert copula_agreement_pairs(10, seed=1) != copula_agreement_pairs(10)


CONLLU = """# sent_id = 1
# text = The dogs don't bark.
1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_
2\tdogs\tdog\tNOUN\tNNS\t_\t4\tnsubj\t_\t_
3-4\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
3\tdo\tdo\tAUX\tVBP\t_\t5\taux\t_\t_
4\tn't\tnot\tPART\tRB\t_\t5\tadvmod\t_\t_
5\tbark\tbark\tVERB\tVB\t_\t0\troot\t_\t_
6\t.\t.\tPUNCT\t.\t_\t5\tpunct\t_\t_

1\tCats\tcat\tNOUN\tNNS\t_\t2\tnsubj\t_\t_
2\tsleep\tsleep\tVERB\tVBP\t_\t0\troot\t_\t_
"""


def test_conllu_loader(tmp_path):
    path = tmp_path / "tiny.conllu"
    path.write_text(CONLLU)
    ds = load_conllu(path, "upos")
    assert ds.words == [["The", "dogs", "do", "n't", "bark", "."], ["Cats", "sleep"]]
    assert ds.labels[0] == ["DET", "NOUN", "AUX", "PART", "VERB", "PUNCT"]
    assert load_conllu(path, "deprel").labels[1] == ["nsubj", "root"]
    path.write_text("1\tThe\tthe\n")
    with pytest.raises(DatasetError, match="10 tab-separated columns"):
        load_conllu(path)


def test_table_loaders_and_their_errors(tmp_path):
    csv = tmp_path / "s.csv"
    csv.write_text("text,label\nthe dog runs,present\nthe dog ran,past\n")
    ds = load_table(csv)
    assert ds.level == "sentence" and ds.words[1] == ["the", "dog", "ran"]
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text('{"tokens": ["the", "dog"], "label": ["DET", "NOUN"]}\n')
    assert load_table(jsonl).labels == [["DET", "NOUN"]]
    with pytest.raises(DatasetError, match="no column 'tag'"):
        load_table(csv, label="tag")
    single = tmp_path / "one.csv"
    single.write_text("text,label\na b,x\nc d,x\n")
    with pytest.raises(DatasetError, match="single class"):
        load_table(single)
    jsonl.write_text('{"tokens": ["the", "dog"], "label": ["DET"]}\n{"tokens": ["a"], "label": ["X"]}\n')
    with pytest.raises(DatasetError, match="2 words but 1 labels"):
        load_table(jsonl)
    with pytest.raises(DatasetError, match="does not exist"):
        load_table(tmp_path / "missing.csv")
    with pytest.raises(DatasetError, match="is empty"):
        ProbingDataset("e", "sentence", [], [])


def write_blimp(rows: list[dict], path: Path) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path
