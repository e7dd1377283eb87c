"""How good a dictionary is, computed as SAELens computes it, with intervals over texts.

    rows = reconstruction(sae, store, skip_positions=1)     # explained variance, L0, MSE, cosine; dead, dense
    rows = loss_recovered(lm, sae, texts, skip_positions=1)  # next-token loss clean, spliced, mean-ablated

* **Explained variance** is SAELens's: ``1 - E||x - x_hat||^2 / Var(x)``, pooled over every scored token
  (``Var(x) = E||x||^2 - ||E x||^2``, summed over dimensions).
* **L0** is the mean number of non-zero features per token; **dead** features never fire on the evaluation
  tokens, **dense** ones fire on more than ``dense_above`` of them.
* **Loss recovered** splices the reconstruction in place of the site's value and compares the next-token
  loss with the clean model's and with the site mean-ablated (its per-position mean over the same texts):
  ``(L_ablated - L_spliced) / (L_ablated - L_clean)``, 1 when splicing costs nothing.

``skip_positions`` leaves each text's first positions out of scoring and out of the splice (a decoder's
first token carries outsized norms that would otherwise dominate the variance). Intervals are percentile
bootstraps over texts (``n_boot`` resamples, seeded).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from probes.causal.behaviours import NextTokenLoss
from probes.causal.reference import Reference
from probes.core.hooks import capture, hooked
from probes.core.model import LoadedModel
from probes.core.store import ActivationStore
from probes.sparse.dictionary import DictionaryError, SparseDictionary


def _bootstrap(groups: np.ndarray, stat, n_boot: int, seed: int) -> tuple[float, float]:
    """Percentile 95% interval of ``stat(chosen groups)`` over resampled groups (texts)."""
    unique = np.unique(groups)
    if len(unique) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = [stat(rng.choice(unique, len(unique))) for _ in range(n_boot)]
    low, high = np.nanpercentile(values, [2.5, 97.5])
    return float(low), float(high)


def reconstruction(
    sae: SparseDictionary,
    store: ActivationStore,
    *,
    skip_positions: int = 0,
    dense_above: float = 0.1,
    n_boot: int = 200,
    seed: int = 0,
    batch_rows: int = 4096,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Reconstruction quality on a store's rows of the dictionary's site (and, for a transcoder, its output site):
    one row per metric (value, ci_low, ci_high), and each feature's density (share of tokens it fires on)."""
    for site in {sae.site, sae.site_out}:
        if site not in store.sites:
            raise DictionaryError(f"the store holds {', '.join(store.sites)}, not the dictionary's site {site}")
    meta = store.tokens()
    texts = meta["example_id"].to_numpy()
    keep = meta["position"].to_numpy() >= skip_positions
    # per-token sums, kept per text for the bootstrap
    sq_norm, sq_resid, l0, cos = [], [], [], []
    sums = []
    fired = torch.zeros(sae.d_sae, dtype=torch.float64)
    device = sae.W_enc.device
    offset = 0
    for (x, _), (y, _) in zip(store.iter_rows(sae.site), store.iter_rows(sae.site_out)):
        n = len(x)
        mask = torch.from_numpy(keep[offset : offset + n])
        offset += n
        x, y = x[mask].float(), y[mask].float()
        for lo in range(0, len(x), batch_rows):
            xb, yb = x[lo : lo + batch_rows].to(device), y[lo : lo + batch_rows].to(device)
            with torch.no_grad():
                codes = sae.encode(xb)
                out = sae.decode(codes).double()
            yb = yb.double()
            sq_norm.append(yb.pow(2).sum(-1).cpu())
            sq_resid.append((yb - out).pow(2).sum(-1).cpu())
            sums.append(yb.cpu())
            l0.append((codes != 0).sum(-1).double().cpu())
            cos.append(torch.nn.functional.cosine_similarity(yb, out, dim=-1).cpu())
            fired += (codes != 0).sum(0).double().cpu()
    groups = texts[keep]
    sq_n, sq_r, l0_all, cos_all = (torch.cat(v).numpy() for v in (sq_norm, sq_resid, l0, cos))
    y_all = torch.cat(sums).numpy()

    by_text = {t: np.flatnonzero(groups == t) for t in np.unique(groups)}  # each text's rows

    def rows_of(chosen: np.ndarray | None) -> np.ndarray:
        """Every row, or the rows of the resampled texts, each as often as it was drawn."""
        return np.arange(len(groups)) if chosen is None else np.concatenate([by_text[t] for t in chosen])

    def explained(chosen: np.ndarray | None = None) -> float:
        idx = rows_of(chosen)
        mean = y_all[idx].mean(0)
        variance = sq_n[idx].mean() - float(mean @ mean)
        return float(1 - sq_r[idx].mean() / variance)

    def mean_of(values: np.ndarray):
        return lambda chosen: float(values[rows_of(chosen)].mean())

    density = (fired / max(len(groups), 1)).numpy()
    rows = []
    for metric, value, stat in (
        ("explained_variance", explained(), explained),
        ("l0", float(l0_all.mean()), mean_of(l0_all)),
        ("mse", float(sq_r.mean()), mean_of(sq_r)),
        ("cosine", float(cos_all.mean()), mean_of(cos_all)),
    ):
        low, high = _bootstrap(groups, stat, n_boot, seed)
        rows.append({"metric": metric, "value": value, "ci_low": low, "ci_high": high})
    rows.append({"metric": "dead_share", "value": float((density == 0).mean()), "ci_low": np.nan, "ci_high": np.nan})
    rows.append(
        {"metric": "dense_share", "value": float((density > dense_above).mean()), "ci_low": np.nan, "ci_high": np.nan}
    )
    rows.append({"metric": "n_tokens", "value": float(len(groups)), "ci_low": np.nan, "ci_high": np.nan})
    return pd.DataFrame(rows), density


def _splice(sae: SparseDictionary, positions: Tensor, skip: int, replacement: Tensor | None):
    """A hook for the dictionary's output site: its value replaced at positions >= skip by the reconstruction of the
    input site's value (``replacement``: by that instead)."""
    inputs: dict[str, Tensor] = {}

    def read_input(value: Tensor) -> None:
        inputs["x"] = value

    def write(value: Tensor) -> Tensor:
        if replacement is not None:
            new = replacement.to(value.device, value.dtype)
        else:
            with torch.no_grad():
                new = sae(inputs.get("x", value)).to(value.dtype)
        where = (positions.to(value.device) >= skip)[..., None]
        return torch.where(where, new, value)

    return read_input, write


def loss_recovered(
    lm: LoadedModel,
    sae: SparseDictionary,
    texts: Sequence[str],
    *,
    skip_positions: int = 0,
    batch_size: int = 16,
    max_length: int | None = None,
    n_boot: int = 200,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Next-token loss per text, clean, with the dictionary spliced in, and with its site mean-ablated; and the
    share of the loss the splice recovers, with a bootstrap interval over texts."""
    behaviour = NextTokenLoss(texts, batch_size=batch_size, max_length=max_length)
    batches = behaviour.prepare(lm)
    readout = behaviour.readout(lm)
    reference = Reference.from_batches(lm, [b.inputs for b in batches], [sae.site_out], keep_samples=False)
    per_text = []
    for batch in batches:
        losses = {}
        for condition in ("clean", "spliced", "mean_ablated"):
            fns: dict = {}
            if condition != "clean":
                mean = reference.mean(sae.site_out, batch.positions) if condition == "mean_ablated" else None
                read_input, write = _splice(sae, batch.positions, skip_positions, mean)
                if sae.site != sae.site_out and condition == "spliced":
                    fns[sae.site] = read_input
                fns = {**fns, sae.site_out: write} if sae.site != sae.site_out else {sae.site: write}
            with torch.inference_mode(), hooked(lm, fns), capture(lm, readout) as cache:
                lm.model(**batch.inputs)
                losses[condition] = behaviour.score(lm, cache[readout], batch).double().cpu().numpy()
        for i in range(batch.n_examples):
            per_text.append({"text": int(batch.example_ids[i]), **{k: float(v[i]) for k, v in losses.items()}})
    frame = pd.DataFrame(per_text)

    by_text = frame.set_index("text")

    def chosen_rows(chosen: np.ndarray | None) -> pd.DataFrame:
        return by_text if chosen is None else by_text.loc[chosen]

    def recovered(chosen: np.ndarray | None = None) -> float:
        f = chosen_rows(chosen)
        span = f["mean_ablated"].mean() - f["clean"].mean()
        return float((f["mean_ablated"].mean() - f["spliced"].mean()) / span) if span != 0 else float("nan")

    def mean_loss(column: str):
        return lambda chosen=None: float(chosen_rows(chosen)[column].mean())

    groups = frame["text"].to_numpy()
    rows = []
    stats = [("loss_recovered", recovered)]
    stats += [(f"loss_{c}", mean_loss(c)) for c in ("clean", "spliced", "mean_ablated")]
    for metric, stat in stats:
        low, high = _bootstrap(groups, stat, n_boot, seed)
        rows.append({"metric": metric, "value": stat(), "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows), frame
