"""The induction family: its metrics against hand computation, its run folder, and the phase change it shows."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from probes.pipelines.ladder import analyse_induction, ladder_models, train_induction_family
from probes.scale.induction import INDUCTION_LENGTH, InductionFamily, induction_batch, induction_metrics, make_model


def test_metrics_equal_the_models_own_loss_and_hand_counted_scores():
    model = make_model(2, seed=3).eval()
    torch.nn.init.normal_(model.model.layers[0].self_attn.q_proj.weight, std=0.5)  # patterns far from uniform
    m = induction_metrics(model, n=16, seed=7)
    ids, labels = induction_batch(16, torch.Generator().manual_seed(7))
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=(ids != 0).long(), labels=labels)
    assert m["loss"] == pytest.approx(float(out.loss), rel=1e-5)  # HF's own shifted cross-entropy
    right = total = whole = 0
    for r in range(16):
        scored = [t for t in range(1, ids.shape[1]) if labels[r, t] != -100]
        hits = [int(out.logits[r, t - 1].argmax()) == int(ids[r, t]) for t in scored]
        right, total, whole = right + sum(hits), total + len(hits), whole + all(hits)
    assert m["token_accuracy"] == pytest.approx(right / total) and m["exact_match"] == pytest.approx(whole / 16)
    # with every run of length 8: Olsson's offset, by hand (head_stats.induction_scores also counts the last
    # query, whose "next token" is the second run's own first token)
    fixed = induction_metrics(model, n=16, seed=7, length=INDUCTION_LENGTH)
    ids8, _ = induction_batch(16, torch.Generator().manual_seed(7), INDUCTION_LENGTH)
    model.set_attn_implementation("eager")
    with torch.no_grad():
        pattern = model(input_ids=ids8, output_attentions=True).attentions[1]
    k = INDUCTION_LENGTH
    q = torch.arange(k + 1, 2 * k)
    assert fixed["L1H0"]["prefix_matching"] == pytest.approx(float(pattern[:, 0, q, q - k + 1].double().mean()))
    t = torch.arange(1, 2 * k + 1)
    assert fixed["L1H0"]["previous_token"] == pytest.approx(float(pattern[:, 0, t, t - 1].double().mean()))


def test_the_family_trains_resumes_and_reads_as_checkpoint_curves(tmp_path):
    family = InductionFamily(steps=30, checkpoints=(0, 10, 20))
    folders = train_induction_family(tmp_path, family, progress=False)
    assert [f.name for f in folders] == ["attn-only-l1", "attn-only-l2"]
    specs = ladder_models(tmp_path)
    assert [(s.label, s.step) for s in specs][:4] == [
        ("attn-only-l1", 0),
        ("attn-only-l1", 10),
        ("attn-only-l1", 20),
        ("attn-only-l1", 30),
    ]
    stamp = (folders[1] / "model.safetensors").stat().st_mtime_ns
    train_induction_family(tmp_path, family, progress=False)  # both done: nothing retrained
    assert (folders[1] / "model.safetensors").stat().st_mtime_ns == stamp
    table, verdicts = analyse_induction(tmp_path, n=32, progress=False)
    assert set(table["metric"]) == {"loss", "token_accuracy", "exact_match", "prefix_matching", "previous_token"}
    assert table.groupby("model")["step"].nunique().eq(4).all()
    assert set(table.loc[table["metric"] == "prefix_matching", "head"]) <= {"L0H0", "L1H0"}
    assert (tmp_path / "scale" / "verdicts.csv").exists() and set(verdicts["family"]) == {
        "induction:attn-only-l1",
        "induction:attn-only-l2",
    }
    saved = pd.read_csv(tmp_path / "eval" / "scale.csv")
    assert len(saved) == len(table)


@pytest.mark.integration
def test_only_the_two_layer_model_learns_to_copy_and_its_loss_jumps(tmp_path):
    """The phase change: with the family's defaults, the two-layer model's second-run loss falls from the
    one-layer plateau (about log 5) to near 0, in a jump over training steps; the one-layer model's does not."""
    train_induction_family(tmp_path, progress=False)
    table, verdicts = analyse_induction(tmp_path, progress=False)
    final = table[(table["step"] == InductionFamily().steps) & (table["task"] == "induction")]
    final = final.set_index(["model", "metric"])["value"]
    assert final["attn-only-l2", "loss"] < 0.2 < 1.2 < final["attn-only-l1", "loss"]
    assert final["attn-only-l2", "token_accuracy"] > 0.9 > 0.6 > final["attn-only-l1", "token_accuracy"]
    v = verdicts.set_index(["family", "task", "metric"])["verdict"]
    assert v["induction:attn-only-l2", "induction", "token_accuracy"] == "jump"
    assert v["induction:attn-only-l2", "induction", "exact_match"] == "jump"
    assert v["induction:attn-only-l1", "induction", "exact_match"] == "flat"
