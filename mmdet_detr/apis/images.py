"""What the inference API accepts as images, and how command lines name
them (files, folders, globs)."""
import glob
import os
import os.path as osp
from typing import List, Sequence, Union

import numpy as np
from PIL import Image

# A path, an (H, W, 3) uint8 array in BGR order (what ``cv2.imread`` and
# ``mmcv.imread`` give, the OpenMMLab convention), an (H, W) grey array, or a
# PIL image (any mode; converted to RGB).
ImageInput = Union[str, os.PathLike, np.ndarray, Image.Image]

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff',
                    '.webp')


def to_pipeline_input(image: ImageInput, index: int) -> dict:
    """The first entry of the test pipeline (mmdet's ``InferencerLoader``):
    ``dict(img_path=...)`` for a file, ``dict(img=BGR array)`` otherwise.

    ``index`` names the image in error messages.
    """
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'image {index}: file {path!r} does not exist (working '
                f'directory: {os.getcwd()!r})')
        return dict(img_path=path)
    if isinstance(image, Image.Image):
        rgb = np.asarray(image.convert('RGB'))
        return dict(img=np.ascontiguousarray(rgb[..., ::-1]))
    if isinstance(image, np.ndarray):
        return dict(img=_check_array(image, index))
    raise TypeError(
        f'image {index}: expected a path, a numpy array or a PIL image, '
        f'got {type(image).__name__}')


def _check_array(image: np.ndarray, index: int) -> np.ndarray:
    """An (H, W, 3) uint8 BGR array from an (H, W) or (H, W, 3) one."""
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(
            f'image {index}: an array must be (H, W, 3) in BGR order or '
            f'(H, W) grey, got shape {image.shape}; convert RGBA with '
            'image[..., :3]')
    if image.dtype != np.uint8:
        raise ValueError(
            f'image {index}: an array must be uint8 (0..255), got '
            f'{image.dtype}; for floats in [0, 1] pass '
            '(image * 255).round().astype(np.uint8)')
    if min(image.shape[:2]) == 0:
        raise ValueError(f'image {index}: empty array of shape {image.shape}')
    return np.ascontiguousarray(image)


def collect_image_files(inputs: Sequence[str]) -> List[str]:
    """Expand command-line inputs into image files, in order, once each.

    Each input is a file (taken whatever its extension), a folder (its
    images, sorted, not recursive) or a glob pattern (``**`` recurses).
    An input that names nothing raises ``FileNotFoundError``.
    """
    files: List[str] = []
    for item in inputs:
        if osp.isfile(item):
            found = [item]
        elif osp.isdir(item):
            found = sorted(
                osp.join(item, name) for name in os.listdir(item)
                if name.lower().endswith(IMAGE_EXTENSIONS)
                and osp.isfile(osp.join(item, name)))
            if not found:
                raise FileNotFoundError(
                    f'input folder {item!r} holds no image '
                    f'({", ".join(IMAGE_EXTENSIONS)})')
        else:
            found = sorted(
                path for path in glob.glob(item, recursive=True)
                if osp.isfile(path) and path.lower().endswith(
                    IMAGE_EXTENSIONS))
            if not found:
                raise FileNotFoundError(
                    f'input {item!r} is neither a file nor a folder and, '
                    'as a glob pattern, matches no image')
        files.extend(found)
    unique = list(dict.fromkeys(osp.normpath(f) for f in files))
    return unique
