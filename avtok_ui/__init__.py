"""avtok-ui: audio-visual tokenization (Cosmos + DAC) with reconstruction and inspection."""

__version__ = "0.1.0"

# The engine's stages share the CPU with torch's OpenMP threads. With OpenMP's default (active) waiting, idle
# intra-op threads spin between ops and starve the decoding/conversion/encoding threads; passive waiting lets
# them sleep (measured on 2 cores, GPU-speed stand-ins: wall/model ratio 1.82 -> 1.43). Takes effect only if
# torch has not been imported yet; an explicit setting is kept.
import os as _os

_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
