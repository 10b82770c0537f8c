"""Converters of other implementations' checkpoints: one module per model
and source (``<model>_<source>.py``), and the pieces they share
(``key_rules``: the ordered key renames; ``coco_classes``; ``converted``:
what a converter returns). :mod:`..sources` lists the ones
``tools/convert_checkpoint.py --from`` reads."""
