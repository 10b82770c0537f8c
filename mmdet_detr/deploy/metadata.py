"""What an exported file says about itself: ``metadata_props`` entries
under ``mmdet_detr.``, written at export and read by the backends."""
import json
from typing import Dict, NamedTuple, Tuple

PREFIX = 'mmdet_detr.'


class ExportMetadata(NamedTuple):
    """attention: ``onnx`` or ``custom`` (see ``attention_forms``);
    detector: the detector class; config: the config file exported from;
    class_names: the name of each label; score_thr: the score a backend
    keeps detections from by default; opset: the ONNX opset of the default
    domain; outputs: the outputs and their meaning; preprocessing: what
    the caller does before the graph."""
    attention: str
    detector: str
    config: str
    class_names: Tuple[str, ...]
    score_thr: float
    opset: int
    outputs: str
    preprocessing: str

    def to_props(self) -> Dict[str, str]:
        """The ``metadata_props`` entries, all strings."""
        return {
            PREFIX + 'attention': self.attention,
            PREFIX + 'detector': self.detector,
            PREFIX + 'config': self.config,
            PREFIX + 'class_names': json.dumps(list(self.class_names)),
            PREFIX + 'score_thr': repr(float(self.score_thr)),
            PREFIX + 'opset': str(self.opset),
            PREFIX + 'outputs': self.outputs,
            PREFIX + 'preprocessing': self.preprocessing,
        }

    @classmethod
    def from_props(cls, props: Dict[str, str],
                   source: str) -> 'ExportMetadata':
        """Read the entries back; a file without them (not exported by
        ``tools/deploy/export_onnx.py``) is refused, naming ``source``."""
        missing = [f for f in cls._fields if PREFIX + f not in props]
        if missing:
            raise ValueError(
                f'{source!r} lacks the metadata_props '
                f'{[PREFIX + f for f in missing]}: it was not exported by '
                'tools/deploy/export_onnx.py; export the model with it')
        return cls(
            attention=props[PREFIX + 'attention'],
            detector=props[PREFIX + 'detector'],
            config=props[PREFIX + 'config'],
            class_names=tuple(json.loads(props[PREFIX + 'class_names'])),
            score_thr=float(props[PREFIX + 'score_thr']),
            opset=int(props[PREFIX + 'opset']),
            outputs=props[PREFIX + 'outputs'],
            preprocessing=props[PREFIX + 'preprocessing'])


def read_metadata(path: str) -> ExportMetadata:
    """The metadata of the ONNX file ``path`` (weights not loaded)."""
    import onnx
    model = onnx.load(path, load_external_data=False)
    return ExportMetadata.from_props(
        {p.key: p.value for p in model.metadata_props}, path)
