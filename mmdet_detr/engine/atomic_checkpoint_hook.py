"""Checkpoints that are either complete or absent, never truncated.

mmengine's ``LocalBackend.put`` opens the final file name and writes into it,
so a process killed while saving leaves a truncated ``epoch_N.pth``; its
``CheckpointHook`` also deletes the oldest kept checkpoint *before* writing
the new one (with ``max_keep_ckpts=1`` a kill at that moment leaves no
checkpoint at all) and writes ``last_checkpoint`` in place.

Here every file is written to a temporary name in the same directory,
flushed to disk and renamed over the final name (``os.replace`` is atomic on
POSIX and Windows), and the oldest checkpoint is deleted only after the new
one and ``last_checkpoint`` are in place.
"""
import glob
import os
import os.path as osp
import tempfile
from typing import Union

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log

from mmdet_detr.registry import HOOKS

BACKEND_NAME = 'atomic_local'
# Temporary files are ``.<final name>.<random>.tmp`` beside the final file.
_TMP_SUFFIX = '.tmp'


def _new_file_mode() -> int:
    """The mode ``open()`` gives a new file: 0o666 less the umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(data: Union[bytes, str], path: str) -> None:
    """Write ``data`` to ``path`` so that ``path`` holds either its old
    content or all of ``data``, whenever the process dies.

    The file gets the permissions a plain write would give it (``mkstemp``
    alone makes it private to the owner).
    """
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    if isinstance(data, str):
        data = data.encode('utf-8')
    fd, tmp_path = tempfile.mkstemp(
        prefix=f'.{osp.basename(path)}.', suffix=_TMP_SUFFIX, dir=directory)
    try:
        os.fchmod(fd, _new_file_mode())
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        if osp.exists(tmp_path):
            os.remove(tmp_path)
        raise
    # The rename itself is durable once the directory entry is on disk.
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with :func:`atomic_write` writes."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write(obj, str(filepath))

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write(obj.encode(encoding), str(filepath))


register_backend(BACKEND_NAME, AtomicLocalBackend, force=True)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose local writes are atomic (see module doc).

    Takes mmengine's ``CheckpointHook`` arguments. Without
    ``backend_args`` (the default) local checkpoints go through
    :class:`AtomicLocalBackend`; a config that names another backend
    (``backend_args=dict(backend='petrel')``) keeps it.
    """

    def before_train(self, runner) -> None:
        if self.backend_args is None and self.file_client_args is None:
            self.backend_args = dict(backend=BACKEND_NAME)
        super().before_train(runner)
        if is_main_process() and self.backend_args == dict(
                backend=BACKEND_NAME):
            _remove_stale_temporaries(self.out_dir)

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        # Same bookkeeping as mmengine's, in a safe order: save, point
        # last_checkpoint at it, and only then delete the oldest one.
        outdated = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        atomic_write(self.last_ckpt, osp.join(runner.work_dir,
                                              'last_checkpoint'))
        if outdated is not None:
            path = self.file_backend.join_path(
                self.out_dir, self.filename_tmpl.format(outdated))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):
                # checkpoints saved by deepspeed are directories
                self.file_backend.rmtree(path)


def _remove_stale_temporaries(out_dir: str) -> None:
    """Delete the partial files a killed run left behind."""
    patterns = (f'.*.pth.*{_TMP_SUFFIX}', f'.last_checkpoint.*{_TMP_SUFFIX}')
    stale = [p for pat in patterns for p in glob.glob(osp.join(out_dir, pat))]
    for path in sorted(stale):
        print_log(
            f'removing {path}, a partly written file of an earlier run that '
            'was stopped while saving', logger='current')
        os.remove(path)
