"""Data layer: the ragged grouped-data type, the Exam-Scores generator and real tables."""

from gvae_fast.data.exam_scores import Translation, generate, translation_pairs
from gvae_fast.data.ragged import GroupedData
from gvae_fast.data.tables import Standardizer, TableError, load_table

__all__ = [
    "GroupedData",
    "Translation",
    "generate",
    "translation_pairs",
    "Standardizer",
    "TableError",
    "load_table",
]
