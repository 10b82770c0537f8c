"""Shared pieces of the converters: ordered regex renames that must
consume every key, the prediction head, the input projections and the
BatchNorm counters that the reference implementations do not store.

Every converter renames keys through :func:`rename` (or, for one key,
:func:`rename_key`) with its own ``(pattern, replacement)`` rules.

Symbols: N decoder layers, K classes, C channels.
"""
import re
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

StateDict = Dict[str, Tensor]
# A ``re.sub`` replacement: a template (``r'layer\1.'``) or a function of
# the match.
Replacement = Union[str, Callable[['re.Match[str]'], str]]
Rules = Sequence[Tuple[str, Replacement]]
# The last rule of a layout whose remaining keys have this project's names
# already: they keep them.
KEEP_REST: Tuple[str, str] = (r'^(.*)$', r'\1')


def rename_key(key: str, rules: Rules) -> Optional[str]:
    """``key`` renamed by the first rule whose pattern matches its start:
    ``''`` when that rule's replacement is ``''`` (the key is dropped),
    None when no rule matches."""
    for pattern, replacement in rules:
        if re.match(pattern, key):
            if not replacement:
                return ''
            return re.sub(pattern, replacement, key, count=1)
    return None


def unmatched_keys(state_dict: StateDict, rules: Rules) -> List[str]:
    """The keys of ``state_dict`` that no rule matches."""
    return [key for key in state_dict if rename_key(key, rules) is None]


def rename(state_dict: StateDict, rules: Rules,
           source: str) -> 'OrderedDict[str, Tensor]':
    """Apply the first matching ``(pattern, replacement)`` to each key.

    A replacement of ``''`` drops the key (a duplicate of another one).
    Every key must match a rule, so nothing of the source is silently lost.
    """
    out, unknown = OrderedDict(), []
    for key, value in state_dict.items():
        name = rename_key(key, rules)
        if name is None:
            unknown.append(key)
        elif name:
            out[name] = value
    if unknown:
        raise KeyError(
            f'{len(unknown)} key(s) of the {source} checkpoint have no place '
            f'in this project\'s model: {unknown[:8]}; is the file a '
            f'Deformable DETR checkpoint of the {source} layout?')
    return out


def num_layers(state_dict: StateDict, prefix: str) -> int:
    """N, from keys ``<prefix><i>.``."""
    pattern = re.compile(re.escape(prefix) + r'(\d+)\.')
    found = {int(m.group(1)) for k in state_dict for m in [pattern.match(k)]
             if m}
    if not found:
        raise KeyError(f'the checkpoint has no {prefix}* keys')
    return max(found) + 1


def find_branch(state_dict: StateDict, prefixes: Sequence[str], index: int,
                suffix: str) -> Tensor:
    """The tensor ``<prefix><index>.<suffix>`` of the first prefix that has
    one, else index 0's (a shared branch saved once)."""
    for i in (index, 0):
        for prefix in prefixes:
            key = f'{prefix}{i}.{suffix}'
            if key in state_dict:
                return state_dict[key]
    raise KeyError(f'the checkpoint has no {prefixes[0]}{index}.{suffix}')


def head(state_dict: StateDict, cls_prefixes: Sequence[str],
         reg_prefixes: Sequence[str], num_branches: int,
         as_two_stage: bool,
         class_rows: Optional[Callable[[Tensor, str], Tensor]],
         proposal_rows: Optional[Callable[[Tensor, str], Tensor]]
         ) -> 'OrderedDict[str, Tensor]':
    """This project's ``bbox_head`` from ``class_embed.i`` (Linear C -> K)
    and ``bbox_embed.i.layers.j`` (3-layer MLP) branches.

    ``class_rows`` picks the rows of the K classes (None keeps them); the
    two-stage proposal branch (the last) uses ``proposal_rows``.
    """
    out = OrderedDict()
    for i in range(num_branches):
        pick = class_rows
        if as_two_stage and i == num_branches - 1:
            pick = proposal_rows
        for part in ('weight', 'bias'):
            tensor = find_branch(state_dict, cls_prefixes, i, part)
            name = f'{cls_prefixes[0]}{i}.{part}'
            out[f'bbox_head.cls_branches.{i}.{part}'] = (
                pick(tensor, name) if pick else tensor)
        for j in range(3):
            for part in ('weight', 'bias'):
                out[f'bbox_head.reg_branches.{i}.{2 * j}.{part}'] = (
                    find_branch(state_dict, reg_prefixes, i,
                                f'layers.{j}.{part}'))
    return out


def check_duplicates(state_dict: StateDict,
                     pairs: List[Tuple[str, str]]) -> None:
    """Keys that a reference model ties to others must hold equal values."""
    for copy_key, main_key in pairs:
        if main_key in state_dict and not torch.equal(
                state_dict[copy_key], state_dict[main_key]):
            raise ValueError(
                f'{copy_key} and {main_key} are the same layer in the '
                'reference model, but the checkpoint holds different values')


def input_projection_rules(state_dict: StateDict,
                           prefix: str) -> List[Tuple[str, str]]:
    """``<prefix>l.0`` (conv) and ``<prefix>l.1`` (GroupNorm) -> the neck.

    1x1 convolutions project backbone maps (``neck.convs``); the 3x3
    stride-2 ones make the extra levels (``neck.extra_convs``).
    """
    rules = []
    levels = num_layers(state_dict, prefix)
    num_ins = sum(
        state_dict[f'{prefix}{level}.0.weight'].shape[-1] == 1
        for level in range(levels))
    for level in range(levels):
        target = (f'neck.convs.{level}' if level < num_ins else
                  f'neck.extra_convs.{level - num_ins}')
        p = re.escape(f'{prefix}{level}.')
        rules.append((p + r'0\.', target + '.conv.'))
        rules.append((p + r'1\.', target + '.gn.'))
    return rules


def add_batch_norm_counters(
        state_dict: 'OrderedDict[str, Tensor]') -> None:
    """Add the ``num_batches_tracked`` buffers of the backbone's
    BatchNorms, which frozen BatchNorms (official, HF) do not have."""
    for key in list(state_dict):
        if key.startswith('backbone.') and key.endswith('.running_var'):
            counter = key[:-len('running_var')] + 'num_batches_tracked'
            state_dict.setdefault(counter, torch.tensor(0, dtype=torch.long))
