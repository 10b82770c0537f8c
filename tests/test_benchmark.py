"""The benchmark's pieces: the mmdet twin, the per-part timer, peak memory,
FLOP counting, and one tiny end-to-end run of ``run_benchmark``."""
import json
import math
import runpy
import sys

import pytest
import torch
from mmengine.config import Config
from torch import nn

from mmdet_detr.benchmark import (build_model_pair, format_report,
                                  predictions_max_difference, run_benchmark,
                                  synthetic_batch)
from mmdet_detr.benchmark.flops import count_flops
from mmdet_detr.benchmark.part_timer import ROWS, PartTimer
from mmdet_detr.benchmark.peak_memory import peak_memory_bytes

TINY = 'tests/configs/tiny_deformable_detr.py'


def test_mmdet_twin_predicts_the_same_with_refinement():
    cfg = Config.fromfile(TINY)
    ours, reference = build_model_pair(
        {**cfg.model, 'with_box_refine': True}, compare_mmdet=True)
    images, samples = synthetic_batch(2, (64, 96), num_classes=4)
    diff = predictions_max_difference(ours, reference, images, samples)
    assert diff['scores'] < 1e-5 and diff['boxes'] < 1e-3, diff
    assert diff['labels'] == 0
    # mmdet's two-stage embedding is fixed at 256 channels.
    with pytest.raises(ValueError, match='embed_dims=32 with as_two_stage'):
        build_model_pair({**cfg.model, 'as_two_stage': True}, True)
    # And DINO's box embedding of the decoder queries.
    dino = Config.fromfile('tests/configs/tiny_dino.py')
    with pytest.raises(ValueError, match='embed_dims=32 with DINO'):
        build_model_pair(dino.model, True)


class _SimulatedClock:
    """A clock that only moves when told to, so the timer's attribution is
    checked exactly, whatever else the machine is doing."""

    def __init__(self):
        self.seconds = 0.0

    def __call__(self):
        return self.seconds

    def sleep(self, seconds):
        self.seconds += seconds


CLOCK = _SimulatedClock()


class _Sleep(torch.autograd.Function):
    """Identity that takes ``seconds`` of :data:`CLOCK` in forward and twice
    that in backward."""

    @staticmethod
    def forward(ctx, x, seconds):
        ctx.seconds = seconds
        CLOCK.sleep(seconds)
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        CLOCK.sleep(2 * ctx.seconds)
        return grad, None


class _Part(nn.Module):

    def __init__(self, seconds=0.0):
        super().__init__()
        self.linear = nn.Linear(4, 4)
        self.seconds = seconds

    def forward(self, x):
        return _Sleep.apply(self.linear(x), self.seconds)


class _Head(nn.Module):

    def __init__(self):
        super().__init__()
        self.assigner = nn.Module()
        self.assigner.assign = lambda: CLOCK.sleep(0.03)

    def loss(self, x):
        self.assigner.assign()
        return x.pow(2).sum()


class _Detector(nn.Module):
    """backbone -> neck -> encoder -> decoder -> head; the encoder takes
    0.05 s forward, 0.1 s backward, matching 0.03 s."""

    def __init__(self):
        super().__init__()
        self.backbone, self.neck, self.decoder = _Part(), _Part(), _Part()
        self.encoder = _Part(0.05)
        self.bbox_head = _Head()

    def loss(self, x):
        return self.bbox_head.loss(
            self.decoder(self.encoder(self.neck(self.backbone(x)))))


def test_part_timer_attributes_forward_and_backward_to_each_part():
    model = _Detector()
    timer = PartTimer(read_clock=CLOCK)
    x = torch.randn(2, 4, requires_grad=True)
    with timer.installed(model):
        timer.step(lambda: model.loss(x), lambda loss: loss.backward(),
                   lambda: None)
    seconds = {row: timer.seconds[row][0] for row in ROWS}
    assert seconds['encoder'] == pytest.approx(0.15, abs=1e-9), seconds
    assert seconds['matching'] == pytest.approx(0.03, abs=1e-9), seconds
    for row in ('backbone', 'neck', 'decoder', 'loss', 'optimizer'):
        assert seconds[row] == pytest.approx(0.0, abs=1e-9), (row, seconds)
    assert timer.seconds['step'][0] == pytest.approx(0.18, abs=1e-9)
    # The hooks are gone afterwards.
    assert 'loss' not in model.bbox_head.__dict__
    assert not model.encoder._forward_hooks


def test_peak_memory_sees_a_temporary_tensor():

    def work():
        a = torch.ones(1 << 20)  # 4 MiB
        b = a * 2  # another 4 MiB while a lives
        del a, b

    peak = peak_memory_bytes(work, 'cpu')
    assert 8 << 20 <= peak < 9 << 20


def test_flops_count_the_deformable_sampling():
    cfg = Config.fromfile(TINY)
    model, _ = build_model_pair(cfg.model, compare_mmdet=False)
    H, W = 64, 96
    images, samples = synthetic_batch(1, (H, W), num_classes=4)
    result = count_flops(model, images, samples)
    enc = cfg.model.encoder
    # Strides 16 and 32 (backbone out_indices 2, 3): S tokens.
    S = math.ceil(H / 16) * math.ceil(W / 16) + \
        math.ceil(H / 32) * math.ceil(W / 32)
    M, L, P, D = enc.num_heads, 2, enc.num_points, 32 // enc.num_heads
    assert result['encoder']['sampling_flops'] == \
        enc.num_layers * 10 * S * M * L * P * D
    for part in ('backbone', 'neck', 'encoder', 'decoder', 'bbox_head'):
        assert result[part]['flops'] > result[part]['sampling_flops'] >= 0
    assert result['total']['flops'] == sum(
        row['flops'] for part, row in result.items() if part != 'total')
    assert result['total']['params'] == sum(
        p.numel() for p in model.parameters())


def test_run_benchmark_compares_with_mmdet():
    result = run_benchmark(TINY, size=64, batch=1, steps=1,
                           compare_mmdet=True, log=lambda line: None)
    assert set(result['models']) == {'mmdet_detr', 'mmdet'}
    for key in ('train_step', 'inference', 'train_step_cpu',
                'inference_cpu'):
        assert result[f'{key}_speedup'] > 0
    ours = result['models']['mmdet_detr']
    assert ours['train_peak_bytes'] > 0
    assert sum(ours['breakdown'][row] for row in ROWS) <= \
        ours['breakdown']['step'] + 1e-6
    assert 'EQUAL to 1e-4' in format_report(result)
    json.dumps(result)  # what --json writes
    with pytest.raises(ValueError, match='--steps 0'):
        run_benchmark(TINY, steps=0)


def test_tool_refuses_to_replace_a_json_file(tmp_path, monkeypatch, capsys):
    out = tmp_path / 'figures.json'
    out.write_text('{"kept": true}')
    monkeypatch.setattr(sys, 'argv', [
        'benchmark.py', TINY, '--steps', '1', '--json', str(out)])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path('tools/benchmark.py', run_name='__main__')
    assert exit_info.value.code == 2
    assert 'exists' in capsys.readouterr().err
    assert json.loads(out.read_text()) == {'kept': True}
