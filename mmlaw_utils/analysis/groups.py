"""The collaboration groups of the paper (§3.3): names, order and the labels of Table 1."""

from __future__ import annotations

SINGLE = "single"
SAME_FAMILY = "same_family"
CROSS_FAMILY = "cross_family"
# ensembles of any size (notebook 07), beyond the paper's pairs
ANY_SIZE = "any_size"

GROUPS = (SINGLE, SAME_FAMILY, CROSS_FAMILY)
PAIR_GROUPS = (SAME_FAMILY, CROSS_FAMILY)
GROUP_LABELS = {
    SINGLE: "Single model",
    SAME_FAMILY: "Model ensemble within a family",
    CROSS_FAMILY: "Model ensemble across families",
    ANY_SIZE: "Model ensemble of any size",
}
