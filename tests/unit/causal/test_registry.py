"""The extension points: an ablation kind of one's own is one class, and every instrument, spec and flag takes it;
a behaviour of one's own is one registered factory. Both checked against hand-made interventions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from probes import register_ablation, register_behaviour
from probes.causal.ablations import Ablation, AblationError, ablation_kind
from probes.causal.attribution import attribute
from probes.causal.behaviours import BehaviourError, LogitDiff, make_behaviour
from probes.causal.components import MLP, Head
from probes.causal.evaluator import Evaluator
from probes.core import loading as models_mod
from probes.core.hooks import intervene
from probes.pipelines.specs import AblationSettings, AblationSpec, SpecError, make
from probes.registry import ABLATIONS, BEHAVIOURS, RegistryError

PROMPTS = ["The cat sat on", "A dog ran to", "The keys are in", "We walk to"]
ANSWERS = [(" the", " a"), (" a", " the"), (" the", " on"), (" the", " a")]


@pytest.fixture
def half():
    """An ablation kind of one's own: the value halved (one class, registered by name)."""

    @register_ablation("half", help="the value times one half")
    class Half(Ablation):
        def replacement(self, cf, site, value):
            return value / 2

    yield Half
    ABLATIONS.unregister("half")


@pytest.fixture
def llama(tiny_folders):
    lm = models_mod.load(tiny_folders["llama"])
    lm.model.double()
    return lm


def test_a_registered_kind_runs_through_the_evaluator_and_attribution(half, llama):
    assert isinstance(ablation_kind("half"), half) and ablation_kind("half").name == "half"
    ev = Evaluator(llama, LogitDiff(PROMPTS, ANSWERS), kind="half")
    got = ev.values([[MLP(0), Head(1, 2)]])[0]

    def halve_head(z):
        z = z.clone()
        z[:, :, 2] = z[:, :, 2] / 2
        return z

    batch, readout = ev.batches[0], ev.behaviour.readout(llama)
    by_hand = {"blocks.0.hook_mlp_out": lambda v: v / 2, "blocks.1.attn.hook_z": halve_head}
    with torch.inference_mode(), intervene(llama, by_hand):
        _, cache = llama.run_with_cache(batch.inputs, readout)
    with torch.inference_mode():
        want = ev.behaviour.score(llama, cache[readout], batch).double().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)

    frame = attribute(ev, [MLP(0), MLP(1)], method="atp")  # the estimate reads the same replacement
    assert frame["kind"].tolist() == ["mlp", "mlp"] and np.isfinite(frame["estimate"]).all()


def test_specs_and_the_cli_take_a_registered_kind(half):
    assert AblationSettings(kind="half").kind == "half"
    from probes.cli import build_parser

    parser = build_parser()
    help_text = parser._subparsers._group_actions[0].choices["ablate"].format_help()  # type: ignore[union-attr]
    assert "half: the value times one half" in " ".join(help_text.split())


def test_unknown_and_inapplicable_names_are_one_line():
    with pytest.raises(SpecError, match=r"--kind: unknown ablation kind 'sero' \(did you mean 'zero'\?\)"):
        make(AblationSettings, {"kind": "sero"}, style="cli")
    with pytest.raises(SpecError, match="'patch' does not apply here: choose from zero, mean or resample"):
        make(AblationSettings, {"kind": "patch"}, style="cli")
    with pytest.raises(AblationError, match="unknown ablation kind 'sero' \\(did you mean 'zero'\\?\\)"):
        ablation_kind("sero")
    with pytest.raises(RegistryError, match="registered already"):
        register_ablation("zero", help="again")(Ablation)


def test_a_registered_behaviour_is_built_by_name(llama):
    @register_behaviour("pets", help="logit difference on four pet prompts", argument="N")
    def pets(lm, argument, *, data, n, seed):
        count = int(argument) if argument else len(PROMPTS)
        return LogitDiff(PROMPTS[:count], ANSWERS[:count])

    try:
        behaviour = make_behaviour(llama, "pets:2")
        assert isinstance(behaviour, LogitDiff) and len(behaviour.prompts) == 2
        assert make(AblationSpec, {"model": "m", "behaviour": "pets:2"}).behaviour == "pets:2"
        with pytest.raises(BehaviourError, match="unknown behaviour 'pet' \\(did you mean 'pets'\\?\\)"):
            make_behaviour(llama, "pet")
        with pytest.raises(BehaviourError, match="takes no argument"):
            make_behaviour(llama, "loss:3")
    finally:
        BEHAVIOURS.unregister("pets")
