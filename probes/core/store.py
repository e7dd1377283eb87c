"""An on-disk activation store that streams, resumes and is reused.

``ActivationStore.build(lm, texts, sites, root)`` runs the model over the texts
in batches and writes one safetensors shard per batch: one row per real
(non-padding) token, each requested site as a tensor, plus the token metadata
(example id, position, token id, word index; token strings in the header).
Memory is bounded by the batch, not the dataset.

The folder name is a hash of model weights, texts, sites, dtype and max length,
so the same request reuses the finished store, and a killed run picks up at
the first missing shard (shards are written to a temporary file, then renamed).

Layout of ``<root>/<model>-<key>/``::

    manifest.json         request, model, environment, progress
    texts.jsonl           the inputs, one JSON string (or word list) per line
    shard_00000.safetensors ...
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from filelock import FileLock
from safetensors import SafetensorError, safe_open
from safetensors.torch import save
from torch import Tensor
from tqdm.auto import tqdm

from analysis.errors import ProbesError
from probes.core.align import EmptyInputError, Encoded, Pooling, pool_words
from probes.core.files import DiskFullError, atomic_path, write_bytes, write_json
from probes.core.hooks import capture
from probes.core.model import LoadedModel
from probes.core.provenance import content_hash, environment
from probes.core.sites import Site, UnknownSiteError

DTYPES = {"float16": torch.float16, "float32": torch.float32, "bfloat16": torch.bfloat16}
META_COLUMNS = ("example_id", "position", "token_id", "word_index")
FORMAT_VERSION = 1


class StoreError(ProbesError, RuntimeError):
    """A store that cannot be written or read as asked."""


class StoreRequestError(StoreError, ValueError):
    """A store request with a bad setting (dtype, batch size)."""


def token_rows(value: Tensor, site: Site, mask: Tensor) -> Tensor:
    """(batch, seq, ...) -> (real tokens, ...); patterns and scores become one row per query token."""
    if site.kind.needs_eager:  # pattern, scores: (batch, head, query, key) -> (batch, query, head, key)
        value = value.permute(0, 2, 1, 3)
    return value[mask.bool()]


class ActivationStore:
    """Read side of a store folder; ``build`` creates or resumes one."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        manifest = self.path / "manifest.json"
        if not manifest.exists():
            raise StoreError(
                f"{self.path} is not an activation store (no manifest.json); build one with ActivationStore.build"
            )
        self.manifest: dict[str, Any] = json.loads(manifest.read_text())

    # ---------------------------------------------------------------- writing
    @classmethod
    def build(
        cls,
        lm: LoadedModel,
        texts: Sequence[str] | Sequence[Sequence[str]],
        sites: str | list[str],
        root: str | os.PathLike,
        *,
        dtype: str = "float16",
        batch_size: int = 16,
        max_length: int | None = None,
        progress: bool = True,
    ) -> ActivationStore:
        """Capture ``sites`` over ``texts`` into ``root``, reusing or resuming a matching store."""
        if len(texts) == 0:
            raise EmptyInputError("empty text list: give at least one text")
        if dtype not in DTYPES:
            raise StoreRequestError(f"unknown store dtype {dtype!r}: use one of {', '.join(DTYPES)}")
        if batch_size < 1:
            raise StoreRequestError(f"batch_size must be at least 1, got {batch_size}")
        resolved = lm.resolve(sites)
        max_length = lm.max_length(max_length)
        texts = [t if isinstance(t, str) else list(t) for t in texts]
        request = {
            "model": lm.name,
            "weights_sha256_16": lm.fingerprint,
            "data_sha256_16": content_hash(texts),
            "sites": [s.name for s in resolved],
            "dtype": dtype,
            "max_length": max_length,
            "start_tokens": lm.start_tokens(),  # the one tokenisation rule, as this model applies it
        }
        path = Path(root) / f"{_slug(lm.name)}-{content_hash(request)}"
        path.mkdir(parents=True, exist_ok=True)
        with FileLock(path / ".lock"):  # a second builder of the same store waits, then finds it complete
            store = cls._open_or_create(path, lm, texts, request, batch_size)
            if not store.manifest["complete"]:
                store._fill(lm, texts, resolved, progress)
        return store

    @classmethod
    def _open_or_create(
        cls, path: Path, lm: LoadedModel, texts: list, request: dict, batch_size: int
    ) -> ActivationStore:
        if (path / "manifest.json").exists():
            return cls(path)  # resume with the batch size it started with: shard i is batch i
        manifest = {
            "format": FORMAT_VERSION,
            "request": request,
            "batch_size": batch_size,
            "n_examples": len(texts),
            "n_shards": -(-len(texts) // batch_size),
            "model": lm.describe(),
            "environment": environment(),
            "seed": None,  # capture is deterministic: eval mode, no sampling
            "complete": False,
        }
        with atomic_path(path / "texts.jsonl") as tmp:
            tmp.write_text("".join(json.dumps(t, ensure_ascii=False) + "\n" for t in texts))
        write_json(path / "manifest.json", manifest)  # last: a folder with a manifest is a store
        return cls(path)

    def _fill(self, lm: LoadedModel, texts: list, sites: list[Site], progress: bool) -> None:
        n_shards, batch_size = self.manifest["n_shards"], self.manifest["batch_size"]
        todo = [i for i in range(n_shards) if not self._shard_path(i).exists()]
        names = [s.name for s in sites]
        with tqdm(
            total=n_shards, initial=n_shards - len(todo), desc=f"capture {lm.name}", unit="batch", disable=not progress
        ) as bar:  # closed on an error too, so the error starts a line of its own
            for i in todo:
                chunk = texts[i * batch_size : (i + 1) * batch_size]
                enc = lm.encode(chunk, max_length=self.manifest["request"]["max_length"])
                with torch.inference_mode(), capture(lm, names) as cache:
                    lm.model(**enc.model_inputs(lm.device))
                self._write_shard(i, lm, enc, sites, cache, first_example=i * batch_size)
                del cache
                bar.update(1)
        self._finish()

    def _write_shard(
        self, index: int, lm: LoadedModel, enc: Encoded, sites: list[Site], cache: dict[str, Tensor], first_example: int
    ) -> None:
        mask = enc.attention_mask.bool()
        dtype = DTYPES[self.manifest["request"]["dtype"]]
        batch, seq = mask.shape
        on_device = mask.to(lm.device)
        tensors = {
            site.name: token_rows(cache[site.name], site, on_device).to("cpu", dtype).contiguous() for site in sites
        }
        ids = enc.inputs["input_ids"]
        tensors["example_id"] = (torch.arange(batch)[:, None].expand(batch, seq) + first_example)[mask]
        tensors["position"] = torch.arange(seq)[None, :].expand(batch, seq)[mask]
        tensors["token_id"] = ids[mask]
        tensors["word_index"] = enc.word_index[mask]
        header = {
            "tokens": json.dumps(lm.tokenizer.convert_ids_to_tokens(ids[mask].tolist()), ensure_ascii=False),
            "truncated": json.dumps(enc.truncated),
            "words_lost": json.dumps(enc.words_lost),
            "seq_len": str(seq),
        }
        target = self._shard_path(index)
        try:  # serialised in memory (one batch), so a full disk is an OSError of the write, not a SafetensorError
            write_bytes(target, save(tensors, metadata=header))
        except DiskFullError:
            raise StoreError(
                f"disk full writing {target.name} in {self.path}: free space or pass another root; "
                f"re-running resumes at shard {index}"
            ) from None
        if index == 0:
            self._check_room(target.stat().st_size)

    def _check_room(self, shard_bytes: int) -> None:
        # Fail early rather than after an hour: the first shard tells the size of the rest.
        need = shard_bytes * (self.manifest["n_shards"] - 1)
        free = _free_bytes(self.path)
        if need > free:
            raise StoreError(
                f"disk full ahead: the store needs about {need / 2**20:.0f} MiB more but {self.path} has "
                f"{free / 2**20:.0f} MiB free; free space, use fewer sites or dtype='float16'"
            )

    def _finish(self) -> None:
        truncated = words_lost = n_tokens = seq = 0
        for i in range(self.manifest["n_shards"]):
            meta = self._shard_meta(i)
            truncated += sum(json.loads(meta["truncated"]))
            words_lost += sum(json.loads(meta["words_lost"]))
            n_tokens += len(json.loads(meta["tokens"]))
            seq = max(seq, int(meta["seq_len"]))
        self.manifest.update(
            complete=True, n_tokens=n_tokens, max_seq_len=seq, n_truncated=truncated, words_lost=words_lost
        )
        self._write_manifest()

    def _write_manifest(self) -> None:
        write_json(self.path / "manifest.json", self.manifest)

    # ---------------------------------------------------------------- reading
    @property
    def sites(self) -> list[str]:
        return list(self.manifest["request"]["sites"])

    @property
    def complete(self) -> bool:
        return bool(self.manifest["complete"])

    def texts(self) -> list:
        with open(self.path / "texts.jsonl", encoding="utf-8") as fh:
            return [json.loads(line) for line in fh]

    def _shard_path(self, index: int) -> Path:
        return self.path / f"shard_{index:05d}.safetensors"

    def _shard_meta(self, index: int) -> dict[str, str]:
        with self._open_shard(self._shard_path(index)) as fh:
            return fh.metadata()

    @contextmanager
    def _open_shard(self, shard: Path) -> Iterator[Any]:
        """A shard to read; a corrupt or truncated one is named, with the fix."""
        try:
            with safe_open(shard, framework="pt") as fh:
                yield fh
        except SafetensorError as err:
            raise StoreError(
                f"{shard} is corrupt or truncated ({err}); delete it and run the same capture again "
                "to recompute that shard"
            ) from None

    def _shards(self) -> Iterator[Path]:
        if not self.complete:
            raise StoreError(f"store {self.path} is incomplete: re-run the same capture to resume it")
        for i in range(self.manifest["n_shards"]):
            yield self._shard_path(i)

    def tokens(self) -> pd.DataFrame:
        """One row per stored token: example_id, position, token_id, token, word_index."""
        frames = []
        for shard in self._shards():
            with self._open_shard(shard) as fh:
                cols = {name: fh.get_tensor(name).numpy() for name in META_COLUMNS}
                cols["token"] = json.loads(fh.metadata()["tokens"])
            frames.append(pd.DataFrame(cols))
        return pd.concat(frames, ignore_index=True)[["example_id", "position", "token_id", "token", "word_index"]]

    def iter_site(self, site: str) -> Iterator[Tensor]:
        """The site's rows shard by shard, for datasets larger than memory."""
        self._check_site(site)
        for shard in self._shards():
            with self._open_shard(shard) as fh:
                yield fh.get_tensor(site)

    def iter_rows(self, site: str) -> Iterator[tuple[Tensor, Tensor]]:
        """The site's rows shard by shard, each with its tokens' positions (to leave out, say, the first)."""
        self._check_site(site)
        for shard in self._shards():
            with self._open_shard(shard) as fh:
                yield fh.get_tensor(site), fh.get_tensor("position")

    def read(self, site: str) -> np.ndarray:
        """All rows of one site, (tokens, ...) in the stored dtype; patterns padded with 0 to the longest key
        axis, scores with -inf (keys that are not there)."""
        parts = list(self.iter_site(site))
        if parts and parts[0].ndim == 3 and site.endswith(("attn.hook_pattern", "attn.hook_scores")):
            width = max(p.shape[-1] for p in parts)
            fill = float("-inf") if site.endswith("hook_scores") else 0.0
            parts = [torch.nn.functional.pad(p, (0, width - p.shape[-1]), value=fill) for p in parts]
        return torch.cat(parts).numpy()

    def read_words(self, site: str, how: Pooling = "mean") -> tuple[np.ndarray, pd.DataFrame]:
        """Word rows of one site (subwords pooled), with a frame of example_id and word_index."""
        meta = self.tokens()
        pooled, keys = pool_words(self.read(site), meta["example_id"].to_numpy(), meta["word_index"].to_numpy(), how)
        return pooled, pd.DataFrame(keys, columns=["example_id", "word_index"])

    def _check_site(self, site: str) -> None:
        if site not in self.sites:
            raise UnknownSiteError(f"site {site!r} is not in this store; it holds {', '.join(self.sites)}")

    def __repr__(self) -> str:
        m = self.manifest
        state = "complete" if self.complete else "incomplete"
        return f"ActivationStore({self.path}, {m['n_examples']} examples, {len(self.sites)} sites, {state})"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name or name)[:48]


def _free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free
