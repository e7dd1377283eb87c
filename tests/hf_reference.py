"""Independent references for the scale evaluation: what HF's own `generate` and `labels=` loss give."""

from __future__ import annotations

import torch


def prompt_ids(lm, prompt: str) -> list[int]:
    tok = lm.tokenizer
    return [tok.bos_token_id or tok.eos_token_id] + tok(prompt, add_special_tokens=False)["input_ids"]


def hf_greedy_tokens(lm, prompt: str, n_new: int) -> list[str]:
    """The next ``n_new`` tokens of HF's greedy ``generate``, as token strings."""
    ids = torch.tensor([prompt_ids(lm, prompt)], device=lm.device)
    with torch.no_grad():
        out = lm.model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=n_new,
            do_sample=False,
            pad_token_id=lm.tokenizer.pad_token_id,
        )
    return lm.tokenizer.convert_ids_to_tokens(out[0, ids.shape[1] :].tolist())


def hf_continuation_logprob(lm, prompt: str, continuation: str) -> float:
    """Sum of the continuation's token log-probs from HF's own mean loss over those tokens."""
    start = prompt_ids(lm, prompt)
    cont = lm.tokenizer(continuation, add_special_tokens=False)["input_ids"]
    full = torch.tensor([start + cont], device=lm.device)
    labels = full.clone()
    labels[0, : len(start)] = -100
    with torch.no_grad():
        return -lm.model(input_ids=full, labels=labels).loss.item() * len(cont)
