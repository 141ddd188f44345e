"""The engine's parts: stages (``stages.py``), how they run together (``flow.py``), exact uint8 <-> model
conversions (``convert.py``), atomic outputs (``outputs.py``) and the heap policy (``heap.py``). ``avtok_ui.pipeline`` composes them."""
