"""Fine-tuning on another number of classes: a checkpoint whose classifiers
score another class count loads everything else, and its classifiers are
replaced by freshly initialised ones of the model's shapes.

Which layers are classifiers, and how they start, the model's head says
(``classifiers()`` and ``reset_classifier``); nothing here knows a key name.
"""
import copy
import logging
from typing import Dict, List

from mmengine.logging import print_log
from torch import Tensor, nn


def fit_class_count(model: nn.Module,
                    state_dict: Dict[str, Tensor]) -> List[str]:
    """Replace, in ``state_dict`` (in place), the classifier tensors whose
    class rows differ from ``model``'s by new ones from the head's
    ``reset_classifier``; log one line when any are replaced.

    A tensor that differs in more than its rows (another width) is left
    alone, for the shape check of the loader to report.

    Returns:
        the replaced keys.
    """
    head = getattr(model, 'bbox_head', None)
    if head is None or not hasattr(head, 'classifiers'):
        return []
    fresh: Dict[int, nn.Module] = {}  # one per module: shared ones once
    replaced, rows = [], None
    for name, classifier in head.classifiers().items():
        prefix = f'bbox_head.{name}.'
        params = {prefix + part: value
                  for part, value in classifier.named_parameters()}
        keys = [key for key in params if key in state_dict]
        if not any(_other_rows(state_dict[key], params[key]) for key in keys):
            continue
        if id(classifier) not in fresh:
            new = copy.deepcopy(classifier).cpu()
            head.reset_classifier(new)
            fresh[id(classifier)] = new
        new_params = dict(fresh[id(classifier)].named_parameters())
        for key in keys:
            rows = (state_dict[key].shape[0], params[key].shape[0])
            state_dict[key] = new_params[key[len(prefix):]].detach().to(
                state_dict[key].dtype)
            replaced.append(key)
    if replaced:
        # Rows beyond the classes (DETR's no-object logit) are not classes.
        extra = rows[1] - head.num_classes
        print_log(
            f'the checkpoint scores {rows[0] - extra} classes and the model '
            f'{rows[1] - extra}: loaded everything but the classification '
            f'layers ({", ".join(sorted(replaced))}), which are '
            're-initialised',
            logger='current',
            level=logging.WARNING)
    return replaced


def _other_rows(value: Tensor, target: Tensor) -> bool:
    """``value`` has ``target``'s shape but for the first (class) axis."""
    return (hasattr(value, 'shape') and value.shape != target.shape
            and value.shape[1:] == target.shape[1:])
