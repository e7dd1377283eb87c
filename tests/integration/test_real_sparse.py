"""A transcoder on a real MLP: smollm2-135m's layer-6 MLP, from what it computes from (``hook_mlp_in``) to what
it writes (``hook_mlp_out``), trained here on a short budget and measured on held-out text."""

from __future__ import annotations

import pytest
import torch

from probes.core.data import split_texts
from probes.core.hooks import capture
from probes.core.store import ActivationStore
from probes.sparse.quality import loss_recovered, reconstruction
from probes.sparse.train import TopKTrainer

pytestmark = pytest.mark.integration

SITES = ["blocks.6.hook_mlp_in", "blocks.6.hook_mlp_out"]


def test_hook_mlp_in_is_what_the_real_mlp_computes_from(smollm):
    ids = smollm.tokenizer(["The keys of a dictionary are hashable."], return_tensors="pt")
    with torch.inference_mode(), capture(smollm, SITES) as cache:
        smollm.model(**ids)
    mlp = smollm.base.layers[6].mlp  # the model's own MLP, run on the site: its own write
    with torch.inference_mode():
        torch.testing.assert_close(mlp(cache[SITES[0]]), cache[SITES[1]], rtol=1e-4, atol=1e-5)


def test_a_transcoder_learns_a_real_mlp(smollm, tmp_path):
    train, test = split_texts(["python-docs"])
    options = {"dtype": "float32", "max_length": 64, "progress": False}
    store = ActivationStore.build(smollm, train[:400], SITES, tmp_path / "train", **options)
    held = ActivationStore.build(smollm, test[:40], SITES, tmp_path / "test", **options)
    trainer = TopKTrainer(expansion=4, k=32, n_tokens=150_000, batch_size=512, skip_positions=1, progress=False)
    transcoder = trainer.fit(store, SITES[0], SITES[1]).dictionary_
    assert transcoder.transcoder and (transcoder.site, transcoder.site_out) == tuple(SITES)
    frame, _ = reconstruction(transcoder, held, skip_positions=1, n_boot=20)
    quality = frame.set_index("metric")["value"]
    # measured here: 0.51 on 25k training tokens (more data and tokens: 0.57); a residual site reaches 0.9
    assert quality["explained_variance"] > 0.4 and quality["l0"] <= 32, quality
    # its output spliced in for the MLP's write, computed from the MLP's input: against mean-ablating the write
    # (0) and the model itself (1), measured here 0.45
    loss, _ = loss_recovered(smollm, transcoder, test[:16], skip_positions=1, max_length=64, n_boot=20)
    recovered = loss.set_index("metric")["value"]["loss_recovered"]
    assert recovered > 0.3, loss
