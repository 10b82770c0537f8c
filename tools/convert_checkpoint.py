"""Convert an official, mmdet or HuggingFace Deformable DETR checkpoint, an
official or mmdet DETR one, or an official or mmdet DINO one, to this
project's layout.

    python tools/convert_checkpoint.py SRC DST --from official

e.g. SRC r50_deformable_detr-checkpoint.pth, DST checkpoints/official.pth;
``--from official-detr`` for facebookresearch/detr's detr-r50-e632da11.pth,
``--from official-dino`` for IDEA-Research/DINO's checkpoint0011_4scale.pth.

The variant (plain, refine, refine_twostage, single_scale,
single_scale_dc5; r50 or r50_dc5 for DETR; dino or dino_improved for DINO,
which the file cannot tell: dino unless given) is read from the checkpoint when
it can be; the command prints the config to test it with. The output is
never written over an existing file.
"""
import argparse
import sys

from mmdet_detr.checkpoint.safe_load import UnsafeCheckpointError
from mmdet_detr.checkpoint.sources import SOURCES, convert_checkpoint
from mmdet_detr.checkpoint.variants import deformable_detr, detr, dino


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'src',
        help='the checkpoint to convert (hf: a .safetensors or .bin file, '
        'or the folder holding it and config.json)')
    parser.add_argument('dst', help='the converted checkpoint to write')
    parser.add_argument(
        '--from', dest='source', required=True, choices=sorted(SOURCES),
        help='the layout of SRC')
    parser.add_argument(
        '--variant',
        choices=(list(deformable_detr.VARIANTS) + list(detr.VARIANTS) +
                 list(dino.VARIANTS)),
        help='the model variant, when the checkpoint does not tell '
        '(single_scale and single_scale_dc5, r50 and r50_dc5, dino and '
        'dino_improved have the same weights)')
    parser.add_argument(
        '--keep-classes', action='store_true',
        help='keep the 91 class logits (DETR: 91 + no-object) as they are '
        "instead of mapping COCO category ids to mmdet's 80 classes")
    return parser.parse_args()


def main():
    args = parse_args()
    try:
        converted = convert_checkpoint(args.src, args.dst, args.source,
                                       args.variant, not args.keep_classes)
    except (FileNotFoundError, FileExistsError, KeyError, ValueError,
            UnsafeCheckpointError) as error:
        # KeyError's str() quotes its message.
        message = error.args[0] if isinstance(error, KeyError) else error
        sys.exit(f'error: {message}')
    print(f'wrote {args.dst}: {args.source} -> this project, variant '
          f'{converted.variant}')
    for note in converted.notes:
        print(f'  {note}')
    print(f'test it with:\n    python tools/test.py {converted.config} '
          f'{args.dst}')


if __name__ == '__main__':
    main()
