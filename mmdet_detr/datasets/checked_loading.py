"""Image loading that names the file and says what to do when it fails.

mmcv's ``LoadImageFromFile`` ends a missing file in a bare
``FileNotFoundError`` from deep inside the data loader and an undecodable one
in ``AssertionError: failed to load image``; a truncated JPEG decodes without
any error with OpenCV 4 (it fills the missing rows with grey and prints
"Premature end of JPEG file"), so a copy cut short trains on garbage.
:class:`CheckedLoadImageFromFile` checks that JPEG and PNG files
are complete, decodes, checks the size against the annotation file, and
gives every image three channels (grayscale and RGBA images train as
colour images).
"""
import logging
from typing import Optional

import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmengine.logging import print_log

from mmdet_detr.registry import TRANSFORMS

_JPEG_START, _JPEG_END = b'\xff\xd8', b'\xff\xd9'
_PNG_START, _PNG_END = b'\x89PNG\r\n\x1a\n', b'IEND'


def truncation_problem(data: bytes) -> Optional[str]:
    """Why ``data`` is not a whole JPEG or PNG file, or None.

    Only the ends of the file are looked at; other formats pass.
    """
    if not data:
        return 'is empty'
    # A JPEG ends with the EOI marker; some writers pad after it.
    if data.startswith(_JPEG_START) and _JPEG_END not in data[-1024:]:
        return 'is a truncated JPEG (no end-of-image marker)'
    # A PNG ends with the IEND chunk: 4 length bytes, 'IEND', 4 CRC bytes.
    if data.startswith(_PNG_START) and _PNG_END not in data[-64:]:
        return 'is a truncated PNG (no IEND chunk)'
    return None


@TRANSFORMS.register_module()
class CheckedLoadImageFromFile(LoadImageFromFile):
    """``LoadImageFromFile`` (same arguments) with clear errors.

    A missing, empty, truncated or undecodable image raises an error naming
    the file and the image id. With ``ignore_empty=True`` such an image is
    skipped instead: a warning names it and counts the skips of this
    process, and mmengine's dataset trains on another image in its place.
    With ``color_type='color'`` grayscale and RGBA images come out as
    (H, W, 3) BGR.
    """

    num_skipped = 0

    def transform(self, results: dict) -> Optional[dict]:
        filename = results['img_path']
        where = f"image {filename!r} (img_id {results.get('img_id', '?')})"
        try:
            data = fileio.get(filename, backend_args=self.backend_args)
        except FileNotFoundError:
            return self._fail(
                FileNotFoundError,
                f'{where} does not exist: put the file there, or fix '
                'data_root / data_prefix in the dataset config, or remove '
                'the image from the annotation file')
        problem = truncation_problem(data)
        img = None
        if problem is None:
            try:
                img = mmcv.imfrombytes(
                    data, flag=self.color_type, backend=self.imdecode_backend)
            except Exception as error:  # pillow raises, cv2 returns None
                problem = f'cannot be decoded ({error})'
            if img is None and problem is None:
                problem = ('cannot be decoded (not an image, or a format '
                           f'{self.imdecode_backend} cannot read)')
        if problem is not None:
            return self._fail(
                ValueError, f'{where} {problem}: replace it with a complete '
                'copy or remove the image from the annotation file; '
                'ignore_empty=True in the loading transform skips such '
                'images')
        if self.color_type == 'color':
            img = _three_channels(img)
        expected = (results.get('height'), results.get('width'))
        if None not in expected and img.shape[:2] != expected:
            raise ValueError(
                f'{where} is {img.shape[0]}x{img.shape[1]} (height x width) '
                f'but the annotation file says {expected[0]}x{expected[1]}: '
                'the boxes would not fit it; fix the image entry of the '
                'annotation file or the image')
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def _fail(self, error: type, message: str) -> None:
        if not self.ignore_empty:
            raise error(message)
        CheckedLoadImageFromFile.num_skipped += 1
        print_log(
            f'skipping: {message} ({CheckedLoadImageFromFile.num_skipped} '
            'images skipped so far in this process)',
            logger='current',
            level=logging.WARNING)
        return None


def _three_channels(img: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1) or (H, W, 4) -> (H, W, 3)."""
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)
    return img[:, :, :3]
