"""REDS data: indexing and validation, the val-300 rule, synthetic REDS, patches, datasets and the data stage."""

from pipeline.data.dataset import PairedPatchDataset, ValFrames
from pipeline.data.patches import extract_patches, read_patch_index
from pipeline.data.prepare import prepare
from pipeline.data.reds import DatasetError, index_reds, is_val300_frame, read_index, select_val300
from pipeline.data.synth import synthesize_reds

__all__ = [
    "DatasetError",
    "PairedPatchDataset",
    "ValFrames",
    "extract_patches",
    "index_reds",
    "is_val300_frame",
    "prepare",
    "read_index",
    "read_patch_index",
    "select_val300",
    "synthesize_reds",
]
