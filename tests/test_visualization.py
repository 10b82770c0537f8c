"""Pictures: the sampling points drawn are the ones the attention module
samples, the query picture draws every query's box centres, labels never
overlap, and each picture tool writes a PNG of the expected size."""
import json
import os
import os.path as osp
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from matplotlib.collections import PathCollection
from tiny_checkpoint import IMAGE_SIZE, NUM_VAL, TINY_CONFIG
from tool_helpers import png_size, run_tool

from mmdet_detr.apis import Detector
from mmdet_detr.datasets.shapes import SHAPE_CLASSES
from mmdet_detr.engine import cli
from mmdet_detr.models.box_ops import boxes_to_pixels
from mmdet_detr.models.heads.deformable_detr_head import DeformableDETRHead
from mmdet_detr.models.heads.detr_head import DETRHead
from mmdet_detr.models.layers.deformable_encoder import \
    encoder_reference_points
from mmdet_detr.models.layers.ms_deform_attn import \
    MultiScaleDeformableAttention
from mmdet_detr.ops import ms_deform_attn_pytorch
from mmdet_detr.visualization.dataset_browser import (build_dataset,
                                                      pipeline_samples)
from mmdet_detr.visualization.drawing import boxes_figure
from mmdet_detr.visualization.query_centres import (check_fixed_queries,
                                                    collect_query_boxes,
                                                    dataset_batches,
                                                    query_centres_figure,
                                                    size_colors)
from mmdet_detr.visualization.query_predictions import query_predictions
from mmdet_detr.visualization.sampling_points import (pixel_to_token,
                                                      sampling_panels,
                                                      visualize_sampling)
from mmdet_detr.visualization.sampling_recorder import SamplingRecorder
from mmdet_detr.visualization.training_curves import (curves_figure,
                                                      load_curves, match_key)

IMAGE = 'data/shapes/val/000001.jpg'


@pytest.fixture(scope='module')
def run(deformable_detr_run):
    return deformable_detr_run


@pytest.fixture(scope='module')
def detector(run):
    return Detector(TINY_CONFIG, run.checkpoint, device='cpu')


def test_recorder_sees_the_tensors_the_kernel_samples():
    torch.manual_seed(0)
    attn = MultiScaleDeformableAttention(
        embed_dims=16, num_heads=2, num_levels=2, num_points=3).eval()
    with torch.no_grad():  # move the points off their initial ring
        attn.sampling_offsets.weight.normal_(0, 0.5)
        attn.attention_weights.weight.normal_(0, 0.5)
    shapes = torch.tensor([[6, 5], [3, 3]])
    starts = torch.tensor([0, 30])
    query, value = torch.randn(2, 4, 16), torch.randn(2, 39, 16)
    mask = torch.zeros(2, 39, dtype=torch.bool)
    refs = torch.rand(2, 4, 2, 2)
    with SamplingRecorder(attn) as recorder, torch.no_grad():
        out = attn(query, value, mask, refs, shapes, starts)
    record = recorder.records['']
    assert attn.sampling_observer is None  # detached on exit
    assert record.locations.shape == (2, 4, 2, 2, 3, 2)
    assert torch.equal(record.reference_points, refs)
    torch.testing.assert_close(record.weights.sum((-2, -1)),
                               torch.ones(2, 4, 2))
    # The recorded points and weights reproduce the module's output.
    with torch.no_grad():
        projected = attn.value_proj(value).view(2, 39, 2, 8)
        expected = attn.output_proj(
            ms_deform_attn_pytorch(projected, shapes, record.locations,
                                   record.weights))
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)


def _scatter_points(ax):
    """(n, 2) offsets of all scatters of ``ax`` and (n, ) values of their
    colour map (None when coloured directly)."""
    collections = [c for c in ax.collections if isinstance(c, PathCollection)]
    values = [c.get_array() for c in collections]
    return (np.concatenate([c.get_offsets() for c in collections]),
            None if values[0] is None else np.concatenate(values))


def _sorted_rows(a):
    return a[np.lexsort(a.T[::-1])]


def test_sampling_points_are_drawn_where_the_attention_samples(detector):
    # What the attention modules sampled, recorded here independently.
    data = detector.preprocess([IMAGE])
    with SamplingRecorder(detector.model) as recorder:
        preds = query_predictions(detector.model, data)
    meta = preds.metas[0]
    assert meta['batch_input_shape'] == (IMAGE_SIZE, IMAGE_SIZE)
    assert meta['scale_factor'] == (1.0, 1.0)
    dec = recorder.records['decoder.layers.0.cross_attn']
    enc = recorder.records['encoder.layers.0.self_attn']
    pixel = (40.0, 21.0)

    fig = visualize_sampling(detector, IMAGE, queries=[7, 2], layer=0,
                             pixel=pixel)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == 3
    token = pixel_to_token(pixel, 0, enc.spatial_shapes, meta)
    for ax, (record, index) in zip(panels, [(dec, 7), (dec, 2),
                                            (enc, token)]):
        points, weights = _scatter_points(ax)
        # Normalised (x, y) on the padded input -> pixels: x * 64.
        expected = record.locations[0, index].reshape(-1, 2).numpy() * 64
        expected_w = record.weights[0, index].reshape(-1).numpy()
        assert len(points) == len(expected) == 4 * 2 * 2  # M * L * P
        np.testing.assert_allclose(
            _sorted_rows(np.c_[points, weights]),
            _sorted_rows(np.c_[expected, expected_w]), atol=1e-4)
        (cross, ) = [line for line in ax.lines if line.get_marker() == '+']
        np.testing.assert_allclose(
            np.ravel(cross.get_xydata()),
            record.reference_points[0, index, 0, :2].numpy() * 64,
            atol=1e-4)
    assert panels[0].get_title().startswith('query 7: ')
    # Each query panel draws its predicted box.
    box = panels[0].patches[0]
    expected_box = boxes_to_pixels(preds.boxes[0, 7], meta['img_shape'],
                                   meta['scale_factor']).numpy()
    np.testing.assert_allclose(
        [box.get_x(), box.get_y(),
         box.get_x() + box.get_width(),
         box.get_y() + box.get_height()], expected_box, atol=1e-4)
    assert 'decoder layer 1 of 2' in fig.texts[0].get_text()

    with pytest.raises(ValueError, match='query 10 does not exist'):
        visualize_sampling(detector, IMAGE, queries=[10])
    with pytest.raises(ValueError, match='decoder layer 2 does not exist'):
        visualize_sampling(detector, IMAGE, layer=2)
    with pytest.raises(ValueError, match='outside the 64x64 image'):
        visualize_sampling(detector, IMAGE, pixel=(64, 3))


def test_encoder_panel_centres_on_the_pixel_in_a_padded_input(run):
    # Padding the 64 px input to 96 px makes the feature maps cover more
    # than the image; points must still land in image pixels.
    padded = Detector(TINY_CONFIG, run.checkpoint, 'cpu',
                      {'model.data_preprocessor.pad_size_divisor': 48})
    preds = query_predictions(padded.model, padded.preprocess([IMAGE]))
    assert preds.metas[0]['batch_input_shape'] == (96, 96)
    for pixel in [(5.0, 60.0), (40.0, 21.0), (63.0, 0.0)]:
        panels, _, strides = sampling_panels(padded, IMAGE, top_k=0,
                                             pixel=pixel)
        (panel, ) = panels
        # The token's reference point is its cell centre: within half a
        # stride of the pixel.
        assert np.all(np.abs(panel.reference - pixel) <= strides[0] / 2)
    assert strides == [16, 32]


def test_pixel_to_token_finds_the_token_under_the_pixel():
    shapes = torch.tensor([[8, 6], [4, 3], [2, 2]])
    meta = dict(batch_input_shape=(64, 48), scale_factor=(0.5, 0.5),
                ori_shape=(128, 96))
    centres = encoder_reference_points(shapes, torch.ones(1, 3, 2))[0, :, 0]
    sizes = (shapes[:, 0] * shapes[:, 1]).tolist()
    for level in range(3):
        start = sum(sizes[:level])
        for pixel in [(0.0, 0.0), (50.3, 77.9), (95.9, 127.9), (20, 100)]:
            token = pixel_to_token(pixel, level, shapes, meta)
            assert start <= token < start + sizes[level]
            # The token's own centre is the nearest one of its level.
            target = torch.tensor(pixel) * 0.5 / torch.tensor([48, 64])
            dist = (centres[start:start + sizes[level]] - target).abs()
            cell = torch.tensor([1 / shapes[level, 1], 1 / shapes[level, 0]])
            assert torch.all(dist[token - start] <= cell / 2 + 1e-6)


def test_query_picture_draws_every_box_centre(run, detector):
    batches = dataset_batches(detector.cfg, 'val')
    boxes, scores = collect_query_boxes(detector.model, batches)
    assert boxes.shape == (NUM_VAL, 10, 4) and scores.shape == (NUM_VAL, 10)
    # The same as each image's own per-query predictions.
    preds = query_predictions(detector.model, detector.preprocess([IMAGE]))
    np.testing.assert_allclose(boxes[0], preds.boxes[0].numpy(), atol=1e-5)

    fig = query_centres_figure(boxes, scores, num_queries=6, columns=4,
                               title='t')
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == 6
    for q, ax in enumerate(panels):
        points, _ = _scatter_points(ax)
        np.testing.assert_allclose(points, boxes[:, q, :2], atol=1e-6)
        assert ax.get_title() == f'query {q} ({NUM_VAL})'
    with pytest.raises(ValueError, match='num_queries must be in 1..10'):
        query_centres_figure(boxes, scores, num_queries=11)

    colors = size_colors(
        np.array([[.5, .5, .1, .1], [.5, .5, .6, .3], [.5, .5, .3, .6]]),
        small_size=0.2)
    assert [tuple(c).index(max(c)) for c in colors] == [1, 0, 2]  # G, R, B
    with pytest.raises(ValueError, match='two-stage'):
        check_fixed_queries(SimpleNamespace(fixed_queries=False))


class _FixedHead(torch.nn.Module):
    """A detector stub whose ``_forward`` returns given per-query outputs
    of 2 decoder layers, as DETR-family detectors do, with the scoring of
    the head class ``head``."""

    def __init__(self, logits, boxes, num_classes, head):
        super().__init__()
        self.logits, self.boxes = logits, boxes
        self.bbox_head = SimpleNamespace(
            num_classes=num_classes,
            class_probabilities=head.class_probabilities)

    def data_preprocessor(self, data, training):
        return data

    def _forward(self, inputs, data_samples):
        return (torch.stack([self.logits * 0, self.logits]),
                torch.stack([self.boxes * 0, self.boxes]))


def test_query_scores_for_sigmoid_and_softmax_heads():
    boxes = torch.rand(1, 3, 4)
    data = dict(inputs=None, data_samples=[SimpleNamespace(metainfo={})])
    logits = torch.tensor([[[2.0, -1.0], [-3.0, 0.5], [0.0, 0.0]]])
    sigmoid = query_predictions(
        _FixedHead(logits, boxes, 2, DeformableDETRHead), data)
    torch.testing.assert_close(sigmoid.scores,
                               logits.sigmoid().max(-1).values)
    assert sigmoid.labels.tolist() == [[0, 1, 0]]
    torch.testing.assert_close(sigmoid.boxes, boxes)
    # DETR: K + 1 logits, the last "no object", softmax over all.
    with_bg = torch.tensor([[[2.0, -1.0, 0.0], [-3.0, 0.5, 4.0]]])
    softmax = query_predictions(
        _FixedHead(with_bg, boxes[:, :2], 2, DETRHead), data)
    torch.testing.assert_close(softmax.scores,
                               with_bg.softmax(-1)[..., :2].max(-1).values)
    assert softmax.labels.tolist() == [[0, 1]]
    first = query_predictions(_FixedHead(with_bg, boxes[:, :2], 2, DETRHead),
                              data, layer=0)
    assert torch.all(first.boxes == 0)
    with pytest.raises(ValueError, match='3 class logits for 5 classes'):
        query_predictions(_FixedHead(with_bg, boxes[:, :2], 5, DETRHead),
                          data)


def test_labels_never_overlap_and_stay_in_the_image():
    image = np.full((64, 64, 3), 128, np.uint8)
    boxes = np.array([[10, 10, 40, 40], [11, 12, 41, 41], [9, 11, 39, 42],
                      [12, 9, 42, 40], [40, 0, 64, 8], [0, 56, 20, 64]],
                     np.float32)
    labels = np.array([0, 1, 2, 3, 0, 1])
    fig = boxes_figure(image, boxes, labels, SHAPE_CLASSES, 'labels',
                       scores=np.linspace(0.9, 0.4, 6))
    ax = fig.axes[0]
    texts = ax.texts
    assert [t.get_text() for t in texts][:2] == ['circle 0.90',
                                                 'square 0.80']
    renderer = fig.canvas.get_renderer()
    extents = []
    for text in texts:  # each label with its background patch
        text.update_bbox_position_size(renderer)
        extents.append(text.get_bbox_patch().get_window_extent(renderer))
    frame = ax.get_window_extent()
    for i, a in enumerate(extents):
        assert frame.x0 - 1 <= a.x0 and a.x1 <= frame.x1 + 1
        assert frame.y0 - 1 <= a.y0 and a.y1 <= frame.y1 + 1
        for b in extents[i + 1:]:
            assert not a.overlaps(b), (a, b)


def test_training_curves_place_metrics_at_their_iteration(tmp_path):
    run_dir = tmp_path / 'run' / '20260101_000000' / 'vis_data'
    run_dir.mkdir(parents=True)
    rows = [dict(loss=3.0, lr=0.1, epoch=1, iter=10, step=10),
            dict(loss=2.0, lr=0.1, epoch=1, iter=20, step=20),
            {'coco/bbox_mAP': 0.1, 'step': 1},
            dict(loss=1.0, lr=0.01, epoch=2, iter=30, step=30),
            {'coco/bbox_mAP': 0.3, 'step': 2}]
    (run_dir / 'scalars.json').write_text(
        '\n'.join(json.dumps(r) for r in rows))
    curves = load_curves(str(tmp_path / 'run'))
    np.testing.assert_array_equal(curves['loss'][0], [10, 20, 30])
    np.testing.assert_array_equal(curves['coco/bbox_mAP'][0], [20, 30])
    np.testing.assert_array_equal(curves['coco/bbox_mAP'][1], [0.1, 0.3])
    assert match_key('bbox_mAP', list(curves)) == 'coco/bbox_mAP'
    with pytest.raises(ValueError, match='not logged; logged keys: .*loss'):
        match_key('mAP', list(curves))
    with pytest.raises(FileNotFoundError, match='scalars.json'):
        load_curves(str(tmp_path))


def test_training_curves_against_training_seconds(tmp_path):
    """The logged mean seconds per iteration times the iterations since the
    previous line, summed over the run and its resumed continuation."""
    first = tmp_path / 'run' / '20260101_000000' / 'vis_data'
    resumed = tmp_path / 'run' / '20260101_010000' / 'vis_data'
    for folder, rows in [
        (first, [dict(loss=3.0, time=0.5, iter=10),
                 dict(loss=2.0, time=0.25, iter=20),
                 {'coco/bbox_mAP': 0.1, 'step': 20}]),
        (resumed, [dict(loss=1.0, time=1.0, iter=30),
                   {'coco/bbox_mAP': 0.3, 'step': 30}]),
    ]:
        folder.mkdir(parents=True)
        (folder / 'scalars.json').write_text(
            '\n'.join(json.dumps(r) for r in rows))
    curves = load_curves(str(tmp_path / 'run'), x='time')
    np.testing.assert_allclose(curves['loss'][0], [5.0, 7.5, 17.5])
    np.testing.assert_allclose(curves['coco/bbox_mAP'][0], [7.5, 17.5])
    fig = curves_figure({'a': curves}, ['bbox_mAP'], x='time')
    assert fig.axes[0].get_xlabel() == 'training seconds'
    (no_time, ) = [tmp_path / 'bare.json']
    no_time.write_text(json.dumps(dict(loss=1.0, iter=1)))
    with pytest.raises(ValueError, match='log no time'):
        load_curves(str(no_time), x='time')


def test_pipeline_outputs_carry_their_boxes(run):
    cfg = cli.load_config(TINY_CONFIG)
    dataset = build_dataset(cfg, 'train')
    flips = set()
    torch.manual_seed(0)
    np.random.seed(1)
    for index, sample in enumerate(pipeline_samples(dataset, 4)):
        info = dataset.get_data_info(index)
        boxes = np.array([i['bbox'] for i in info['instances']])
        assert sample.image.shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
        flipped = 'flipped' in sample.description
        flips.add(flipped)
        if flipped:
            boxes = np.c_[IMAGE_SIZE - boxes[:, 2], boxes[:, 1],
                          IMAGE_SIZE - boxes[:, 0], boxes[:, 3]]
        np.testing.assert_allclose(sample.boxes, boxes, atol=1e-3)
    with pytest.raises(ValueError, match="--phase 'dev'"):
        build_dataset(cfg, 'dev')


def test_picture_tools_write_pngs(run, tmp_path):
    common = ['--device', 'cpu', '--cfg-options',
              'model.test_cfg.max_per_img=5']
    out = str(tmp_path / 'sampling.png')
    run_tool(['tools/visualize_sampling.py', TINY_CONFIG, run.checkpoint,
              IMAGE, '--top-k', '2', '--out', out] + common)
    # 3 panels of 3 x 3 in, 2 gaps of 0.25, margins of 0.2 and 1.0 (with
    # the colour bar) across, 0.75 (legend) + 0.35 + 0.8 (titles) down.
    assert png_size(out) == (1070, 490)
    with pytest.raises(SystemExit):  # exists: not replaced
        run_tool(['tools/visualize_sampling.py', TINY_CONFIG,
                  run.checkpoint, IMAGE, '--out', out])

    out = str(tmp_path / 'queries.png')
    run_tool(['tools/visualize_queries.py', TINY_CONFIG, run.checkpoint,
              '--num-queries', '10', '--out', out] + common)
    # One row of 10 panels of 1.5 in, 9 gaps and 2 margins of 0.15 across;
    # 0.6 (title) + 1.5 + 0.25 (panel title) + 0.55 (legend) down.
    assert png_size(out) == (1665, 290)

    out = str(tmp_path / 'curves.png')
    run_tool(['tools/analyze_logs.py', 'plot', run.work_dir, run.work_dir,
              '--legend', 'a', 'b', '--keys', 'loss', 'lr', '--out', out])
    assert png_size(out) == (1000, 380)

    out_dir = str(tmp_path / 'browse')
    run_tool(['tools/browse_dataset.py', TINY_CONFIG, '--phase', 'val',
              '--num', '1', '--out-dir', out_dir, '--cfg-options',
              'val_dataloader.dataset.indices=[1]'])
    (name, ) = os.listdir(out_dir)
    assert name == '0000_000002.png'
    assert png_size(osp.join(out_dir, name)) == (8 * IMAGE_SIZE,
                                                 8 * IMAGE_SIZE + 45)
