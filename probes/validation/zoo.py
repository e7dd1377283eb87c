"""The planted zoo: Llama models built by hand so that one mechanism is exact, each with the behaviour it plants.

    model, tokenizer, behaviour = build("conjunctive")   # the weights, a word-level tokenizer, its behaviour
    save("conjunctive", folder)                          # a Hugging Face model folder every instrument loads

Every model has one block of four heads and a SwiGLU MLP (d_model 16) and reads prompts of word tokens.
The residual stream holds a large constant in dimension 0, so each RMSNorm divides by (almost exactly) the
same number and everything downstream of it is linear where the mechanism says so: the norm's
nonlinearity moves a behaviour by a few parts in a million. Attention queries are zero, so every head
attends uniformly to the prompt so far; a head "moves" a feature by reading its dimension through its
value projection and writing it elsewhere through the output projection. Heads 2 and 3 carry a
feature nothing reads.

Cases (``CASES``) and what each plants (``PLANTED``):

* ``additive``: L0H0 moves feature a, L0H1 feature b; the answer logit is a + b (the unembedding reads both).
* ``conjunctive``: the MLP writes relu(a + b - 3.5) into the answer; a and b lie in [2, 3], so it needs both
  heads' writes (an AND: either head alone leaves it at 0).
* ``redundant``: the MLP writes min(a + b, 1.5); either head alone saturates it (an OR).
* ``decision``: the prompt is one token carrying a (read by L0H0 into the answer: "yes" when a is high)
  and c (in the residual, read by nothing); the erasure cases erase a (readable and used) or c (readable
  but unused) from the residual stream.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from probes.causal.behaviours import FunctionBehaviour
from probes.probing.datasets.base import ProbingDataset
from probes.scale.induction import train_induction
from probes.scale.ladder import BOS, PAD, word_tokenizer

D_MODEL, N_HEADS, HEAD_DIM, D_MLP = 16, 4, 4, 8
CONSTANT = 1e4  # the residual's constant: RMSNorm divides by ~CONSTANT / sqrt(D_MODEL) whatever the features
SHARP = 40.0  # silu(SHARP z) / SHARP is relu(z) to 1e-9 for |z| >= 0.5, the margin the planted values keep
# residual dimensions
CONST, FEAT_A, FEAT_B, FEAT_C, WRITE_A, WRITE_B, ANSWER, IDLE = range(8)
LEVELS = np.linspace(2.0, 3.0, 5)  # the values a feature token carries (a and b in [2, 3])
AND_THRESHOLD, OR_CEILING = 3.5, 1.5  # relu(a + b - 3.5) needs both; min(a + b, 1.5) is full with either
CASES = ("additive", "conjunctive", "redundant", "decision")  # built by hand; "induction" is trained
PLANTED = {
    "additive": "the answer logit is the sum of two heads' writes: reduces to separable parts",
    "conjunctive": "the answer needs both heads' writes together (AND): emerges from their interaction",
    "redundant": "either head's write suffices (OR): redundant parts, each alone enough",
    "decision": "the answer reads feature a; feature c sits in the residual, read by nothing",
}


def vocabulary() -> list[str]:
    words = [PAD, BOS, "yes", "no"]
    words += [f"a{i}" for i in range(len(LEVELS))] + [f"b{i}" for i in range(len(LEVELS))]
    words += [f"a{i}c{j}" for i in range(len(LEVELS)) for j in range(len(LEVELS))]
    return words


def tokenizer():
    """The hand-set models' tokenizer: their vocabulary (``vocabulary()``), one token per word."""
    return word_tokenizer(vocabulary())


def _embeddings() -> torch.Tensor:
    """Each token: the constant, plus its features (a, b, c) at their dimensions."""
    words = vocabulary()
    E = torch.zeros(len(words), D_MODEL, dtype=torch.float64)
    E[:, CONST] = CONSTANT
    for t, w in enumerate(words):
        if w.startswith("a") and "c" in w:
            i, j = map(int, w[1:].split("c"))
            E[t, FEAT_A], E[t, FEAT_C] = LEVELS[i], LEVELS[j]
        elif w[0] in "ab" and w[1:].isdigit():
            E[t, FEAT_A if w[0] == "a" else FEAT_B] = LEVELS[int(w[1:])]
    return E


def build(case: str):
    """The model of ``case`` (``CASES``), its tokenizer and the behaviour it plants, ready to run."""
    from transformers import LlamaConfig, LlamaForCausalLM

    if case not in CASES:
        raise ValueError(f"unknown zoo case {case!r}; the cases are {', '.join(CASES)}")
    words = vocabulary()
    config = LlamaConfig(
        vocab_size=len(words),
        hidden_size=D_MODEL,
        intermediate_size=D_MLP,
        num_hidden_layers=1,
        num_attention_heads=N_HEADS,
        num_key_value_heads=N_HEADS,
        head_dim=HEAD_DIM,
        max_position_embeddings=16,
        rms_norm_eps=1e-12,
        tie_word_embeddings=False,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=1,
    )
    model = LlamaForCausalLM(config).double()
    # After an RMSNorm (weight 1) a residual x reads x * sqrt(d) / CONSTANT (to a few parts in a million).
    norm = np.sqrt(D_MODEL) / CONSTANT
    prompt_length = 2 if case == "decision" else 3  # BOS + tokens: uniform attention averages over them
    block = model.model.layers[0]
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for n in (block.input_layernorm, block.post_attention_layernorm, model.model.norm):
            n.weight.fill_(1.0)
        model.model.embed_tokens.weight.copy_(_embeddings())
        attn = block.self_attn
        moves = [(FEAT_A, WRITE_A), (FEAT_B, WRITE_B), (FEAT_C, IDLE), (FEAT_C, IDLE)]
        for h, (read, write) in enumerate(moves):
            attn.v_proj.weight[h * HEAD_DIM, read] = prompt_length / norm  # undo the norm and the averaging
            attn.o_proj.weight[write, h * HEAD_DIM] = 1.0
        # The heads' writes as the MLP reads them (after the second norm): WRITE_* * norm.
        mlp, unit = block.mlp, 1.0 / norm
        if case == "conjunctive":  # neuron 0: relu(a + b - 3.5)
            _neuron(mlp, 0, {WRITE_A: unit, WRITE_B: unit, CONST: -AND_THRESHOLD / np.sqrt(D_MODEL)}, +1.0)
        elif case == "redundant":  # min(s, 1.5) = relu(s) - relu(s - 1.5), s = a + b
            _neuron(mlp, 0, {WRITE_A: unit, WRITE_B: unit}, +1.0)
            _neuron(mlp, 1, {WRITE_A: unit, WRITE_B: unit, CONST: -OR_CEILING / np.sqrt(D_MODEL)}, -1.0)
        # The answer logit ("yes" - "no") after the final norm: read ANSWER (or the heads' writes) back to units.
        W = model.lm_head.weight
        yes, no = words.index("yes"), words.index("no")
        if case == "additive":
            W[yes, WRITE_A] = W[yes, WRITE_B] = unit
        elif case == "decision":  # yes when a is above its middle level
            W[yes, WRITE_A] = unit
            W[yes, CONST] = -LEVELS.mean() / np.sqrt(D_MODEL)
            W[no] = -W[yes]
        else:
            W[yes, ANSWER] = unit
    model = model.float().eval()
    return model, tokenizer(), behaviour(case)


def _neuron(mlp, index: int, reads: dict[int, float], sign: float) -> None:
    """A SwiGLU unit that computes sign * relu(sum_i w_i x_i): gate SHARP * (...), up the constant / SHARP."""
    for dim, weight in reads.items():
        mlp.gate_proj.weight[index, dim] = SHARP * weight
    mlp.up_proj.weight[index, CONST] = 1.0 / SHARP / np.sqrt(D_MODEL)  # the normed constant is sqrt(d)
    mlp.down_proj.weight[ANSWER, index] = sign


@dataclass(frozen=True)
class Prompt:
    text: str
    a: float
    b: float
    c: float


def prompts(case: str) -> list[Prompt]:
    """Every prompt of the case: all pairs of levels (a, b), or for ``decision`` all tokens (a, c)."""
    n = len(LEVELS)
    if case == "decision":
        return [Prompt(f"a{i}c{j}", LEVELS[i], 0.0, LEVELS[j]) for i in range(n) for j in range(n)]
    return [Prompt(f"a{i} b{j}", LEVELS[i], LEVELS[j], 0.0) for i in range(n) for j in range(n)]


def answer_logit_difference(logits: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
    """Per prompt, the right answer's logit minus the wrong one's (``answers``: (n, 2) token ids)."""
    return logits.gather(1, answers[:, :1]).squeeze(1) - logits.gather(1, answers[:, 1:]).squeeze(1)


def behaviour(case: str) -> FunctionBehaviour:
    """The planted behaviour: the "yes" - "no" logit; for ``decision`` the right answer's (yes when a is high).
    A function of the logits, so ``probes validate`` runs a ``FunctionBehaviour`` through the ablation study and
    amnesic probing as any user's would."""
    ps = prompts(case)
    if case == "decision":
        ps = [p for p in ps if p.a != LEVELS.mean()]  # the middle level has no right answer
        answers = [("yes", "no") if p.a > LEVELS.mean() else ("no", "yes") for p in ps]
    else:
        answers = [("yes", "no")] * len(ps)
    return FunctionBehaviour([p.text for p in ps], answer_logit_difference, answers, name="logit_diff")


def concept(name: str) -> ProbingDataset:
    """The decision model's features as probing concepts: ``a`` (high / low) or ``c``, one labelled token each."""
    if name not in ("a", "c"):
        raise ValueError("the zoo's concepts are 'a' and 'c'")
    ps = [p for p in prompts("decision") if getattr(p, name) != LEVELS.mean()]
    labels = ["high" if getattr(p, name) > LEVELS.mean() else "low" for p in ps]
    # Each token three times in training and once held out: both splits balanced, so the probe's
    # cross-validation and its refit see the same classes (an unbalanced refit at the strongest
    # regularisation the CV ties on can fall back to the majority class).
    copies = 4
    return ProbingDataset(
        f"zoo-{name}",
        "sentence",
        [[p.text] for p in ps] * copies,
        labels * copies,
        ["train"] * (len(ps) * (copies - 1)) + ["test"] * len(ps),
    )


# --- a natural one: induction, trained here (probes.scale.induction: the two-layer model of the induction family)


def save(case: str, folder: str | os.PathLike) -> None:
    """The case's model and tokenizer as a Hugging Face folder (safetensors)."""
    if case == "induction":
        model, tok, _ = train_induction()
    else:
        model, tok, _ = build(case)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
