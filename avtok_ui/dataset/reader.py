"""Reading a token dataset back: :class:`TokenDataset`, a PyTorch ``IterableDataset`` over ``OUT/shards``.

The shards are plain WebDataset tars (``<key>.safetensors`` + ``<key>.json``), so ``webdataset`` reads
them as they are; this reader adds decoding into tensors and the split across consumers: every
(distributed rank, DataLoader worker) pair gets a disjoint part, and together they read every sample
exactly once per epoch -- whole shards when there are at least as many shards as consumers, else every
``n``-th sample (members of other consumers' samples are skipped, not read).

Each sample's token file goes through the same schema check as every other reader
(:func:`avtok_ui.tokencheck.validate_bytes`) before anything is decoded; a corrupt sample raises
:class:`~avtok_ui.errors.TokenFileError` ``<shard>: <key>.safetensors: <problem>``. ``validate=False``
skips the check (for shards you trust, when the value scan's cost matters).
"""

from __future__ import annotations

import json
import os
import random
import struct
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..errors import TokenFileError
from ..tokencheck import validate_bytes
from ..tokens import TokenMeta
from .shards import complete_shards


def decode_sample(key: str, token_bytes: bytes, record: dict[str, Any] | None = None, *,
                  validate: bool = True, shard: str | None = None) -> dict[str, Any]:
    """One sample as tensors (CPU, stored dtypes; layouts as in :mod:`avtok_ui.tokens`):

    * ``visual``: DV uint16 ids ``[1, t, h, w]`` in [0, 64000); CV bf16 latents ``[1, t, h, w, C]`` (C: the
      setting's latent channels, 16 for Cosmos and Wan 2.1);
    * ``audio_codes``: uint16 ``[n_q, n_code_frames]`` (< 1024), or None for a silent video / no audio;
    * ``audio_latent_offsets``: int64 ``[t + 1]``: latent ``i`` <-> ``audio_codes[:, off[i]:off[i+1]]``;
    * ``latent_source_frames`` int64 ``[t, 2]``, ``frame_pts`` int64 ``[T]``, ``window_frames`` /
      ``window_latents`` int64 ``[n_windows]``;
    * ``meta``: the token file's metadata (dict), ``record``: the sample's ``.json`` (index row + readouts).

    ``validate`` (default): the token file's schema check first; a failure raises :class:`TokenFileError`
    ``[<shard>: ]<key>.safetensors: <problem>``. ``validate=False`` trusts the bytes (faster).
    """
    from safetensors.torch import load

    if validate:
        try:
            meta = validate_bytes(token_bytes, f"{key}.safetensors").meta
        except TokenFileError as err:
            if shard is None:
                raise
            raise TokenFileError(f"{Path(shard).name}: {err}") from None
    else:
        (n,) = struct.unpack("<Q", token_bytes[:8])
        meta = json.loads(token_bytes[8:8 + n]).get("__metadata__", {})
    tm = TokenMeta.from_metadata(meta, Path(f"{key}.safetensors"))
    tensors = load(token_bytes)
    return {
        "key": key,
        "visual": tensors["visual"],
        "audio_codes": tensors.get("audio_codes"),
        "audio_latent_offsets": tensors.get("audio_latent_offsets"),
        "latent_source_frames": tensors["latent_source_frames"],
        "frame_pts": tensors["frame_pts"],
        "window_frames": tensors["window_frames"],
        "window_latents": tensors["window_latents"],
        "meta": tm.__dict__,
        "record": record or {},
    }


def _consumer(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """``(index, count)`` of this (rank, DataLoader worker) among all consumers."""
    if rank is None or world_size is None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
        else:
            rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    info = get_worker_info()
    wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
    return rank * nw + wid, world_size * nw


class TokenDataset(IterableDataset):
    """Per video, a dict of tensors (see :func:`decode_sample`), from a dataset folder written by
    ``avtok dataset`` (or a list of shard paths).

    ``shuffle``: shuffle the shard order each epoch (seeded by ``seed`` + :meth:`set_epoch`);
    ``rank``/``world_size``: default from ``torch.distributed`` (or ``RANK``/``WORLD_SIZE``);
    ``validate``: check each sample's token file first (see :func:`decode_sample`); False skips it.
    Use ``DataLoader(ds, batch_size=None, num_workers=k)``: samples differ in length.
    """

    def __init__(self, root: str | os.PathLike[str] | list[str], *, shuffle: bool = False, seed: int = 0,
                 rank: int | None = None, world_size: int | None = None, validate: bool = True) -> None:
        super().__init__()
        if isinstance(root, (list, tuple)):
            self.shards = [str(p) for p in root]
        else:
            self.shards = [str(p) for p in complete_shards(Path(root))]
            if not self.shards:
                raise FileNotFoundError(f"{root}: no shards/shard-*.tar (is this an `avtok dataset` folder?)")
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        self.rank, self.world_size = rank, world_size
        self.validate = validate

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> list[str]:
        shards = list(self.shards)
        if self.shuffle:
            random.Random(self.seed + self.epoch).shuffle(shards)
        return shards

    def __iter__(self) -> Iterator[dict[str, Any]]:
        me, count = _consumer(self.rank, self.world_size)
        shards = self._order()
        whole = len(shards) >= count  # whole shards per consumer, else every count-th sample
        n = 0
        for shard in (shards[me::count] if whole else shards):
            with tarfile.open(shard, mode="r:") as tar:
                for key, members in _groups(tar):
                    if whole or n % count == me:
                        rec = json.loads(tar.extractfile(members["json"]).read()) if "json" in members else None
                        yield decode_sample(key, tar.extractfile(members["safetensors"]).read(), rec,
                                            validate=self.validate, shard=shard)
                    n += 1


def _groups(tar: tarfile.TarFile) -> Iterator[tuple[str, dict[str, tarfile.TarInfo]]]:
    """``(key, {ext: member})`` per sample, in shard order (a sample's members are consecutive)."""
    key, members = None, {}
    for m in tar:
        if not m.isfile():
            continue
        k, _, ext = m.name.partition(".")
        if key is not None and k != key:
            yield key, members
            members = {}
        key = k
        members[ext] = m
    if key is not None:
        yield key, members
