"""The scale evaluation on a real model: smollm2-135m's greedy answers and option log-probs."""

from __future__ import annotations

import pandas as pd
import pytest
from hf_reference import hf_continuation_logprob, hf_greedy_tokens

from analysis.mirage import score_examples
from probes.core.loading import parameter_counts
from probes.probing.datasets.synthetic import make_task
from probes.scale.evaluate import GenerationTask, evaluate_task

pytestmark = pytest.mark.integration


def test_smollm_outputs_match_generate_and_its_own_loss(smollm):
    tok = smollm.tokenizer
    examples = [{**ex, "prompt": ex["prompt"].replace("=", " = ")} for ex in make_task("addition", 6, digits=1, seed=4)]
    rows = evaluate_task(smollm, GenerationTask("addition", examples))
    for ex, row in zip(examples[:3], rows):
        n_new = len(tok(ex["target"], add_special_tokens=False)["input_ids"])
        assert row["generated"] == hf_greedy_tokens(smollm, ex["prompt"], n_new)
        assert row["target_logprob"] == pytest.approx(
            hf_continuation_logprob(smollm, ex["prompt"], ex["target"]), abs=2e-3
        )
    scored = score_examples(pd.DataFrame([{"model": "smol", "task": "addition", **r} for r in rows]))
    assert scored[["exact_match", "token_accuracy", "mc_accuracy", "brier"]].notna().all().all()
    total, non_embedding = parameter_counts(smollm.model)
    assert total == 134_515_008 and non_embedding == total - 49_152 * 576  # tied embeddings: counted once
