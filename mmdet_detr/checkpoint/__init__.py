"""Checkpoint loading: safe unpickling and foreign-layout converters.

- ``safe_load.py``: reads a file with ``weights_only`` and an allowlist;
  imports nothing of this project.
- ``loader.py``: the loading side. mmengine's local-file loader, the
  refusal of another layout with the command that converts it, and
  ``prepare_state_dict``; imports ``safe_load``, ``sources`` and
  ``class_count``.
- ``class_count.py``: fine-tuning on another class count re-initialises
  the classifiers the head declares.
- ``sources.py``: the ``--from`` table of ``tools/convert_checkpoint.py``.
- ``converters/``: one module per model and source, and their shared key
  rules; they read files with ``safe_load`` only.
- ``variants/``: per detector, its variants and their configs.
"""
