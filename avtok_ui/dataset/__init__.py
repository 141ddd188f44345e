"""Token datasets: ``avtok dataset`` (a video library -> WebDataset shards on Ray Data) and the reader.

* :mod:`.inputs` -- folder / glob / manifest -> inputs with stable keys;
* :mod:`.worker` -- the tokenizer actor (models loaded once, many videos);
* :mod:`.job` -- the Ray Data driver (embedded local Ray or a cluster), resume, summary, QA sample;
* :mod:`.shards` -- atomic shard writer, index.parquet, summary.json;
* :mod:`.reader` -- :class:`TokenDataset`, a PyTorch ``IterableDataset`` over the shards.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TokenDataset"]


def __getattr__(name: str) -> Any:  # lazy: the CLI imports this package without loading torch
    if name == "TokenDataset":
        from .reader import TokenDataset

        return TokenDataset
    raise AttributeError(name)
