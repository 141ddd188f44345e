"""The engine's parts: stages (``stages.py``), how they run together (``flow.py``), exact uint8 <-> model
conversions (``convert.py``) and atomic outputs (``outputs.py``). ``avtok_ui.pipeline`` composes them."""
