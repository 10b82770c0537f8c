"""Where the inference and picture tools write, without losing anything:
an existing file is replaced only on ``--overwrite``."""
import os.path as osp
from typing import List, Sequence


def check_new_output(path: str, option: str, overwrite: bool) -> None:
    """Refuse to replace an existing file unless ``overwrite``; ``option``
    names the command-line argument in the message."""
    if osp.isdir(path):
        raise ValueError(f'{option}: {path!r} is a folder; name a file')
    if osp.exists(path) and not overwrite:
        raise FileExistsError(
            f'{option}: {path!r} already exists; pass --overwrite to '
            'replace it, or choose another path')


def picture_names(paths: Sequence[str]) -> List[str]:
    """One distinct ``<stem>.png`` per input image; images of equal stem
    from different folders become ``<stem>_2.png``, ``<stem>_3.png``."""
    names, used = [], set()
    for path in paths:
        stem = osp.splitext(osp.basename(path))[0]
        name, count = f'{stem}.png', 1
        while name in used:
            count += 1
            name = f'{stem}_{count}.png'
        used.add(name)
        names.append(name)
    return names
