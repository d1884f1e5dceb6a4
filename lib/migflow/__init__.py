"""migflow: annual bilateral migration flows by country of birth.

A re-implementation of Gaskin & Abel (2025), "Deep learning four decades of human
migration": a recurrent per-edge network estimates the flow table T[t, i, j, k]
(people born in i moving from j to k in year t), a demographic accounting recursion
turns flows into stocks, and an ensemble with covariate noise gives bounds.

Modules, one concept each:

- :mod:`migflow.paths`       project folders and the raw-data directory
- :mod:`migflow.schema`      the dataset schema shared by synthetic and real data
- :mod:`migflow.synthetic`   the embedded synthetic world with known truth
- :mod:`migflow.transforms`  the symmetric Yeo-Johnson transform and covariate scaling
- :mod:`migflow.edges`       the modelled (birth, origin, destination) edges and inputs
- :mod:`migflow.accounting`  the stock recursion (births, deaths, inflows, outflows)
- :mod:`migflow.model`       the per-edge recurrent network
- :mod:`migflow.loss`        the banded, weighted loss
- :mod:`migflow.training`    training, run folders and checkpoints
- :mod:`migflow.ensemble`    ensembles, covariate noise and estimate files
- :mod:`migflow.baselines`   the six five-year flow methods from stock tables
- :mod:`migflow.abel_cohen`  the six methods on real inputs against Abel & Cohen's flows
- :mod:`migflow.splits`      held-out sets: random and K-fold corridors, countries, years
- :mod:`migflow.crossval`    one network per fold, scored on what it did not see
- :mod:`migflow.validation`  metrics and comparisons
- :mod:`migflow.plotting`    one function per figure (:mod:`migflow.crossval_plots`,
  :mod:`migflow.geography` and :mod:`migflow.elasticities` for the rest)
- :mod:`migflow.sources`, :mod:`migflow.realdata`, :mod:`migflow.countries`: the real data
"""

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
