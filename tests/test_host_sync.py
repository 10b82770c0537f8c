"""Host reads of tensor data (GPU synchronisations) during a training step.

The forward pass, the box losses and the backward pass read nothing back;
matching reads all cost matrices of all decoder layers and images once (and
once more for the encoder proposals of two-stage and DINO). DINO's
denoising queries read nothing.
Counted on CPU with ``HostTransferCounter``, which sees the same calls a GPU
would wait on. One exception is CPU-only: mmdet's ``FocalLoss`` on a CPU
tensor one-hot encodes the labels with ``F.one_hot``, which checks their
range on the host; on a GPU it calls mmcv's CUDA kernel instead.
"""
import copy

import pytest
import torch
from mmengine.config import Config
from torch import nn

from mmdet_detr.benchmark import build_model_pair, synthetic_batch
from mmdet_detr.benchmark.host_transfers import HostTransferCounter

TINY = 'tests/configs/tiny_deformable_detr.py'
TINY_DINO = 'tests/configs/tiny_dino.py'
# (config, model settings over it)
VARIANTS = {
    'plain': (TINY, dict()),
    'refine_twostage': (TINY, dict(with_box_refine=True, as_two_stage=True)),
    # The denoising queries are built from the objects' counts, which are
    # tensor shapes: no read either.
    'dino': (TINY_DINO, dict()),
}


def count_training_step(model: nn.Module, images, samples):
    """Counts and sites of one forward, matching, backward and AdamW step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    assigner, loss_cls = model.bbox_head.assigner, model.bbox_head.loss_cls
    model.train()
    with HostTransferCounter() as counter:
        assigner.assign = _in_phase(counter, 'matching', assigner.assign)
        loss_cls.forward = _in_phase(counter, 'loss_cls', loss_cls.forward)
        try:
            losses = model.loss(images, copy.deepcopy(samples))
        finally:
            del assigner.assign, loss_cls.forward
        with counter.phase('backward'):
            sum(losses.values()).backward()
        with counter.phase('optimizer'):
            optimizer.step()
    return counter


def _in_phase(counter, phase, method):

    def wrapped(*args, **kwargs):
        with counter.phase(phase):
            return method(*args, **kwargs)

    return wrapped


@pytest.mark.parametrize('name', list(VARIANTS))
def test_training_step_reads_back_only_the_matching_costs(name):
    config, settings = VARIANTS[name]
    cfg = Config.fromfile(config)
    model_cfg = {**cfg.model, **settings}
    model, _ = build_model_pair(model_cfg, compare_mmdet=False)
    images, samples = synthetic_batch(2, (64, 96), num_classes=4,
                                      boxes_per_image=3)
    counter = count_training_step(model, images, samples)
    assert counter.counts['forward'] == 0, counter.sites['forward']
    assert counter.counts['backward'] == 0, counter.sites['backward']
    # One read for all decoder layers and images; two-stage and DINO match
    # the encoder proposals (other predictions) on their own.
    expected = 2 if (model_cfg.get('as_two_stage')
                     or model_cfg['type'] == 'DINO') else 1
    assert counter.counts['matching'] == expected, counter.sites['matching']
    assert all('mmdet/models/losses/focal_loss.py' in site
               for site in counter.sites['loss_cls']), counter.sites


class _ReadsShapes(nn.Module):
    """A forward with the classic host reads of a detector."""

    def forward(self, x, shapes):
        for h, w in shapes.tolist():
            x = x * h
        n = int(shapes.sum())
        return x[:n].cpu().numpy(), x.sum().item()


def test_counter_sees_tolist_int_cpu_numpy_and_item():
    with HostTransferCounter() as counter:
        _ReadsShapes()(torch.ones(8), torch.tensor([[1, 2], [2, 1]]))
        with counter.phase('other'):
            torch.zeros(2).tolist()
    # tolist, int(), .cpu().numpy() (one read), item.
    assert counter.counts['forward'] == 4, counter.sites['forward']
    assert counter.counts['other'] == 1
    assert all('test_host_sync.py' in site
               for site in counter.sites['forward'])
    # Patched methods are restored.
    assert torch.ones(2).tolist() == [1.0, 1.0]
    assert 'tolist' not in torch.Tensor.__dict__
