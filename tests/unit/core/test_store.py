"""The on-disk activation store: round trip, reuse, resume after a kill, bounded memory."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from importlib import metadata

import numpy as np
import pytest
from conftest import DEMO_TEXTS

from probes import ActivationStore, run_with_cache
from probes.core.align import EmptyInputError
from probes.core.loading import load
from probes.core.store import StoreError

SITES = [
    "blocks.0.hook_resid_post",
    "blocks.0.attn.hook_k",
    "blocks.1.attn.hook_scores",
    "blocks.1.attn.hook_pattern",
    "blocks.1.attn.hook_z",
]


def test_round_trip_equals_in_memory_capture(tiny, tmp_path):
    texts = DEMO_TEXTS[:7]
    store = ActivationStore.build(tiny, texts, SITES, tmp_path, dtype="float32", batch_size=3, progress=False)
    assert store.complete and store.manifest["n_shards"] == 3
    tokens = store.tokens()
    rows = 0
    for start in range(0, len(texts), 3):  # the same batches, captured in memory
        _, cache = run_with_cache(tiny, texts[start : start + 3], SITES)
        mask = tiny.encode(texts[start : start + 3]).attention_mask.bool()  # the one tokenisation rule
        n = int(mask.sum())
        for site in SITES:
            value = cache[site].cpu()
            if site.endswith(("pattern", "scores")):
                value = value.permute(0, 2, 1, 3)
            expected = value[mask].numpy()
            got = store.read(site)[rows : rows + n]
            np.testing.assert_array_equal(got[..., : expected.shape[-1]], expected)
            if site.endswith("pattern"):  # padded key columns of a shorter batch are zero
                assert not got[..., expected.shape[-1] :].any()
            if site.endswith("scores"):  # ... and keys that are not there for scores
                assert np.isneginf(got[..., expected.shape[-1] :]).all()
        rows += n
    assert rows == len(tokens) == store.manifest["n_tokens"]
    ids = [tiny.token_ids(t) for t in texts]
    assert tokens["token_id"].tolist() == [t for row in ids for t in row]
    assert tokens["token"].tolist() == tiny.tokenizer.convert_ids_to_tokens(tokens["token_id"].tolist())
    assert tokens["position"].tolist() == [p for row in ids for p in range(len(row))]
    assert tokens["example_id"].tolist() == [e for e, row in enumerate(ids) for _ in row]
    assert store.texts() == texts


def test_float16_store_and_word_pooling(tiny, tmp_path):
    texts = DEMO_TEXTS[:5]
    store = ActivationStore.build(tiny, texts, "blocks.*.hook_resid_post", tmp_path, batch_size=2, progress=False)
    values = store.read("blocks.1.hook_resid_post")
    assert values.dtype == np.float16
    _, cache = run_with_cache(tiny, texts[:2], "blocks.1.hook_resid_post")
    mask = tiny.encode(texts[:2]).attention_mask.bool()
    np.testing.assert_allclose(
        values[: int(mask.sum())], cache["blocks.1.hook_resid_post"].cpu()[mask].numpy(), rtol=1e-3, atol=1e-3
    )
    pooled, keys = store.read_words("blocks.1.hook_resid_post", how="mean")
    assert len(pooled) == sum(len(t.split()) for t in texts)
    assert keys.groupby("example_id").size().tolist() == [len(t.split()) for t in texts]


def test_same_request_reuses_the_store(tiny, tmp_path):
    first = ActivationStore.build(tiny, DEMO_TEXTS[:4], SITES, tmp_path, batch_size=2, progress=False)
    stamps = {p.name: p.stat().st_mtime_ns for p in first.path.glob("shard_*")}
    again = ActivationStore.build(tiny, DEMO_TEXTS[:4], SITES, tmp_path, batch_size=2, progress=False)
    assert again.path == first.path
    assert {p.name: p.stat().st_mtime_ns for p in again.path.glob("shard_*")} == stamps
    other = ActivationStore.build(tiny, DEMO_TEXTS[:4], SITES[:1], tmp_path, batch_size=2, progress=False)
    assert other.path != first.path  # different sites, different store


def test_manifest_records_provenance(tiny, tmp_path):
    store = ActivationStore.build(tiny, DEMO_TEXTS[:3], SITES, tmp_path, progress=False)
    m = json.loads((store.path / "manifest.json").read_text())
    assert m["model"]["weights_sha256_16"] == tiny.fingerprint
    assert m["request"]["sites"] == SITES
    assert m["environment"]["packages"]["torch"] == metadata.version("torch")  # as installed ('2.11.0', not '+cu130')
    assert "seed" in m and m["complete"]


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from probes import ActivationStore
    from probes.core.loading import load
    lm = load(sys.argv[1])
    lm.model.register_forward_hook(lambda *a: time.sleep(0.3))  # slow enough to be killed mid-run
    texts = [l for l in open(sys.argv[3]).read().splitlines()]
    ActivationStore.build(lm, texts, sys.argv[4].split(","), sys.argv[2], batch_size=2, progress=False)
    """
)


@pytest.mark.slow
def test_resume_after_a_killed_run(tiny_folders, tmp_path):
    folder = tiny_folders["gpt2"]
    texts_file = tmp_path / "texts.txt"
    texts_file.write_text("\n".join(DEMO_TEXTS[:24]))
    root = tmp_path / "store"
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(folder), str(root), str(texts_file), ",".join(SITES)])
    deadline = time.time() + 120
    while time.time() < deadline and len(list(root.glob("*/shard_*.safetensors"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (store_dir,) = root.iterdir()
    done = {p.name: p.stat().st_mtime_ns for p in store_dir.glob("shard_*.safetensors")}
    assert 3 <= len(done) < 12, "the run should have been killed part-way"
    with pytest.raises(StoreError, match="incomplete"):
        ActivationStore(store_dir).read(SITES[0])

    lm = load(folder)
    resumed = ActivationStore.build(lm, DEMO_TEXTS[:24], SITES, root, batch_size=2, progress=False)
    assert resumed.path == store_dir and resumed.complete
    assert {n: t for n, t in ((p.name, p.stat().st_mtime_ns) for p in store_dir.glob("shard_*")) if n in done} == done
    fresh = ActivationStore.build(lm, DEMO_TEXTS[:24], SITES, tmp_path / "fresh", batch_size=2, progress=False)
    for site in SITES:
        np.testing.assert_array_equal(resumed.read(site), fresh.read(site))
    assert not list(store_dir.glob(".*.tmp")), "no temporary files left behind"


MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, sys, torch
    def peak_mib():
        # VmHWM, not ru_maxrss: ru_maxrss survives exec and would report the parent's size at fork
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    from transformers import GPT2Config, GPT2LMHeadModel, AutoTokenizer
    from probes import ActivationStore, wrap
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=320, n_embd=256, n_layer=2, n_head=4, n_positions=128))
    lm = wrap(model, AutoTokenizer.from_pretrained(sys.argv[1]))
    texts = open(sys.argv[3]).read().splitlines() * int(sys.argv[4])
    store = ActivationStore.build(lm, texts, "*", sys.argv[2], batch_size=16, progress=False)
    stored = sum(p.stat().st_size for p in store.path.glob("shard_*"))
    print(json.dumps({"peak_mib": peak_mib(), "stored_mib": stored / 2**20}))
    """
)


@pytest.mark.slow
def test_memory_is_bounded_by_the_batch_not_the_dataset(tiny_folders, tmp_path):
    texts_file = tmp_path / "texts.txt"
    texts_file.write_text("\n".join(DEMO_TEXTS))
    script = tmp_path / "mem.py"
    script.write_text(MEMORY_SCRIPT)

    def peak(repeat: int) -> dict:
        out = subprocess.run(
            [
                sys.executable,
                str(script),
                str(tiny_folders["gpt2"]),
                str(tmp_path / f"s{repeat}"),
                str(texts_file),
                str(repeat),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    small, large = peak(5), peak(50)
    assert large["stored_mib"] > 250, "the large run must store far more than the memory margin"
    assert large["peak_mib"] - small["peak_mib"] < 60, (small, large)


def test_bad_requests(tiny, tmp_path, monkeypatch):
    with pytest.raises(EmptyInputError, match="empty text list"):
        ActivationStore.build(tiny, [], SITES, tmp_path)
    with pytest.raises(ValueError, match="unknown store dtype"):
        ActivationStore.build(tiny, ["a b"], SITES, tmp_path, dtype="int8")
    with pytest.raises(KeyError, match="unknown site"):
        ActivationStore.build(tiny, ["a b"], ["blocks.0.resid_post"], tmp_path)
    store = ActivationStore.build(tiny, ["a b"], SITES[:1], tmp_path, progress=False)
    with pytest.raises(KeyError, match="not in this store"):
        store.read("blocks.1.hook_resid_post")
    with pytest.raises(StoreError, match="not an activation store"):
        ActivationStore(tmp_path)
    monkeypatch.setattr("probes.core.store._free_bytes", lambda path: 1024)
    with pytest.raises(StoreError, match="disk full ahead"):
        ActivationStore.build(tiny, DEMO_TEXTS[:6], SITES, tmp_path / "full", batch_size=2, progress=False)
