"""The fused emotion model (torch): coattention early fusion and score-level late fusion."""

from edgeser_export.model.fusion import LEVELS, FusionConfig, FusionEnsemble, FusionModel

__all__ = ["LEVELS", "FusionConfig", "FusionEnsemble", "FusionModel"]
