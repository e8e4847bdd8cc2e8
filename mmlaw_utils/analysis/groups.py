"""The collaboration groups of the paper (§3.3): names, order and the labels of Table 1."""

from __future__ import annotations

import pandas as pd

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

# The paper's Table 1 (§4.2; eqs. 8-10), P in billions, losses in nats per text.
PAPER_TABLE1 = pd.DataFrame(
    {
        "group": list(GROUPS),
        "raw_points": [71, 506, 1979],
        "pareto_points": [12, 22, 32],
        "L_inf": [1765.0285, 1780.0938, 1625.5834],
        "A": [886.1545, 979.6996, 948.0984],
        "alpha": [0.3578, 0.8500, 0.5516],
    }
)
