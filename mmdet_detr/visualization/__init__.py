"""Pictures: detections, deformable-attention sampling points, what each
object query predicts, training curves and pipeline outputs."""
