"""avtok-ui: audio-visual tokenization (Cosmos + DAC) with reconstruction and inspection."""

__version__ = "0.1.0"
