"""avtok-ui: audio-visual tokenization (Cosmos + DAC) with reconstruction and inspection."""

__version__ = "0.1.0"

# The engine's stages share the CPU with torch's OpenMP threads. With OpenMP's default (active) waiting, idle
# intra-op threads spin between ops and starve the decoding/conversion/encoding threads; passive waiting lets
# them sleep (measured on 2 cores, GPU-speed stand-ins: wall/model ratio 1.82 -> 1.43). Takes effect only if
# torch has not been imported yet; an explicit setting is kept.
import os as _os

_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Window-sized buffers (a 17-frame 720p window is 47 MB as uint8, 94 MB as bf16) are allocated and freed for
# every window; with 4 KiB pages each costs ~24k page faults. Torch's CPU allocator asks for transparent huge
# pages (2 MiB) for buffers >= 2 MiB when this is set (numpy already does for >= 4 MiB): kernel time of a 60 s
# 720p GPU-speed run fell by a third (benchmarks/README.md). Read by torch at its first allocation; an explicit
# setting (THP_MEM_ALLOC_ENABLE=0 to turn it off) is kept.
_os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
