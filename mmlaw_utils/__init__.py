"""mmlaw: reproducible artifact for *The Law of Multi-Model Collaboration*.

One module per concern: ``texts`` (held-out text sets), ``pool`` (model pools),
``scoring`` (eq. 1 kernel), ``cache`` (per-model score files), ``lossmatrix``
(the models x texts data model), ``oracle`` (eqs. 3-4), ``frontier`` (§3.4),
``fit`` (eq. 7), ``plots`` and ``tables`` (Figures 1-2, Table 1).
"""

__version__ = "0.1.0"
