"""Edges and circuits: edge attribution patching (EAP, EAP-IG) and circuits measured exactly.

The graph of writers and readers (``graph``), the edge evaluator with its forward passes and edge scores
(``edges``), and faithfulness curves (``faithfulness``).

    ev = Evaluator(lm, MinimalPairs(pairs), kind="mean")      # or patch_evaluator(...): clean and corrupted runs
    edges = EdgeEvaluator(ev)                                  # checks its graph against the model's own residual
    scores = edges.scores("eap-ig", steps=5)                   # one score per edge, per example
    curve = faithfulness_curve(edges, scores)                  # top-k circuits measured exactly, and random ones
    curve.smallest_share(0.8)                                  # (share of edges, CI low, CI high)

**The graph.** Writers put a vector into the residual stream: the input (the embeddings, what block 0 reads),
every head (its output through its slice of the out-projection) and every MLP. Readers take the residual
stream: every head's query, every key-value head's key and value (through the block's first norm), every MLP
(through its norm) and the logits (through the final norm). An edge joins a writer to each reader after it:
a head of block l feeds block l's MLP in sequential blocks, not in parallel ones (GPT-J, GPT-NeoX, Falcon).
Every reader's input is the sum of its writers' writes (and attention biases, which no counterfactual
moves); ``EdgeEvaluator`` checks that sum against the model's own inputs before it scores anything.

**Removing an edge** (u -> r) replaces, in r's input only, u's write by its counterfactual write: zero, the
mean, a resampled or a patched value, exactly as the ``Evaluator`` ablates u. A circuit keeps some edges and
removes the rest: each reader reads ``x - sum over removed u of (w_u - w_u')``, with ``w_u`` the write of
this (changed) run and ``w_u'`` the counterfactual one, so a removal reaches everything downstream. On an
unmodified HF model the reader's input is changed where it enters: the first norm is run again on each
head's own input and its projection's columns replace ``hook_q`` / ``hook_k`` / ``hook_v``; the MLP's and the
final norm's inputs are replaced by a hook on the module that takes them (the row's ``mlp_in``).

**Scores.** EAP (Syed et al. 2023): an edge's effect to first order, ``(w_u' - w_u) . d metric / d x_r`` at
the clean run, where ``x_r`` is r's input; one forward and one backward pass for every edge. EAP-IG (Hanna et
al. 2024) averages the gradient over ``steps`` points between the counterfactual and the clean input (the
embeddings interpolated, midpoint rule). A writer's edge scores sum to its AtP node score: the residual
stream it writes into is read by its readers only.

**Faithfulness** of a circuit C: ``(m(C) - m(empty)) / (m(full) - m(empty))``, of mean behaviour values,
each measured exactly: the full circuit is the model (1), the empty one has every edge removed (0).
"""

from probes.causal.circuits.edges import EdgeEvaluator as EdgeEvaluator
from probes.causal.circuits.edges import EdgeScores as EdgeScores
from probes.causal.circuits.edges import verify_edges as verify_edges
from probes.causal.circuits.faithfulness import FaithfulnessCurve as FaithfulnessCurve
from probes.causal.circuits.faithfulness import faithfulness_curve as faithfulness_curve
from probes.causal.circuits.faithfulness import size_grid as size_grid
from probes.causal.circuits.faithfulness import trace_curve as trace_curve
from probes.causal.circuits.graph import FINAL_READOUTS as FINAL_READOUTS
from probes.causal.circuits.graph import METHODS as METHODS
from probes.causal.circuits.graph import CircuitError as CircuitError
from probes.causal.circuits.graph import Graph as Graph
