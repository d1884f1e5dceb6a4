"""The embedded synthetic world: N made-up countries whose true migration flows are known.

:func:`build_world` returns two :class:`xarray.Dataset` objects: the *observations*
(everything a model may read, in the layout of :mod:`migflow.schema`) and the *truth*
(the flow table, flows, stocks and net migration that generated them). Nothing here is
real: countries are called ``S001``, ``S002``, ... ("Synthland 1", ...), so they cannot
be mistaken for ISO codes, and every dataset says ``data_source = "synthetic"``.

The world is generated from one seed with :func:`numpy.random.default_rng`. The seed is
split into two independent streams: one draws the world and its truth, the other only
the observation noise, so changing how observations are taken never changes the truth.
Numbers below are the module constants (upper case) used by the code.

1. Geography
------------
``R = clip(round(N / 30) + 4, 5, 8)`` regions ("Synthetic region A", "B", ...) are
centres on a 16,000 x 8,000 km plane, at least 3,500 km apart. Every region gets one
country; the others are spread over the regions with Dirichlet(3) probabilities, so
region sizes differ. A country lies at its region centre plus a normal offset of sd
700 km per axis, so regions are spatial clusters. ``distance`` is the Euclidean
distance in km plus a floor of 100 km (the diagonal is the floor; it is never used).

2. Economy, demography and conflict (per country and year)
-----------------------------------------------------------
- Initial log GDP per capita: region levels evenly spaced between log 1,500 and
  log 35,000 USD (shuffled over the regions, plus N(0, 0.2)), plus N(0, 0.5) per country.
- ``conflict_deaths``: each country-year starts a burst with probability
  ``0.01 + 0.04 * poor`` (``poor`` = logistic(log 3,000 - initial log GDP), so a few %
  of country-years); a burst lasts 1-5 years with a log-normal level (median 2,000,
  log-sd 1.2, clipped to 100..100,000 deaths a year) and log-normal(0, 0.4) yearly
  variation. Overlapping bursts add up; zero otherwise; rounded to whole persons.
- ``gdp_per_capita``: a log random walk with drift ``0.02 + N(0, 0.01)`` per country,
  shocks N(0, 0.03) a year and -0.04 a year in conflict. ``gdp_growth`` is 100 times the
  annual growth (%), from the walk's value one year before ``first_year``.
- ``life_expectancy`` = 55 + 6.4 (log GDP - log 1,000) + 0.12 years per year + a country
  effect N(0, 2) + N(0, 0.3), clipped to 40..86 years.
- ``birth_rate`` = 42 - 8.5 (log GDP - log 1,000) - 0.15 per year + N(0, 2.5) per
  country + N(0, 0.5), clipped to 8..45 per 1000.
- ``death_rate`` = 16 - 0.45 (life expectancy - 55) + N(0, 1) per country + N(0, 0.2),
  clipped to 4..18 per 1000.
- ``population`` is not drawn: it is the column sum of the true stock (everybody living
  in the country on 1 January), so it is consistent with the accounting.
  ``births = birth_rate / 1000 * population`` and ``deaths = death_rate / 1000 *
  population`` of the same year.
- ``refugees[t, i, k]`` of birth country i hosted in k: ``R[t] = 0.8 R[t-1] + 10 *
  conflict_deaths[t, i] * w[i, k]`` with ``w[i, k]`` proportional to
  ``exp(-distance / 1,500 km)`` over k != i (near neighbours first); zero on the diagonal.
- ``eu_member``: a club of the two regions with the richest initial GDP level. Each of
  their countries joins with probability 0.75; about 30% of the joiners (at least two)
  are founders in ``first_year``, the others join in a uniformly drawn later year and
  stay in. Membership grows from a few countries to typically 10-40% of all countries.

3. Culture, history and trade (country pairs)
----------------------------------------------
- ``colonial_tie``: ``clip(round(N / 30), 2, 6)`` "former colonisers" are the richest
  countries of the club regions. Each is tied to a share U(0.10, 0.20) of the countries
  outside the club regions, drawn with coloniser-specific region preferences
  (Dirichlet(0.7) weights). The tie is **symmetric** (coloniser <-> colony), 0 on the
  diagonal.
- ``linguistic_similarity``: each country has a vector of language weights over R
  regional languages and one national language per coloniser: weight 1 on its region's
  language, with probability 0.25 a second weight U(0.1, 0.5) on the language of the
  nearest other region, 1.5 on a coloniser's own language for the coloniser, and
  U(0.3, 1.2) on the coloniser's language for each of its colonies. The similarity is
  the cosine of two vectors: in [0, 1], 1 on the diagonal.
- ``religious_similarity``: religion shares over 6 religions are Dirichlet with
  concentration 0.3 everywhere and 5 on the region's dominant religion; the similarity
  is the inner product of two share vectors (in [0, 1]; the diagonal is below 1).
- ``trade[t, j, k]`` (exports from j to k, USD) = 1e10 (Y_j / 1e12)^0.8 (Y_k / 1e12)^0.8
  / (distance / 1,000 km) times a persistent log-normal pair effect (sd 1.0) and a
  yearly log-normal noise (sd 0.2), with Y = GDP per capita x population; 0 on the
  diagonal.

4. True stocks and flows
------------------------
Initial stock ``S0`` on 1 January of ``first_year``: the native-born diagonal is
log-normal (median 5 million, log-sd 1.5, clipped to 1e5..1.4e9). For every birth
country i, ``D = clip(round(0.15 N), 3, 20)`` diaspora residence countries j != i are
drawn without replacement (Gumbel top-D) with gravity-like scores
``-1.2 log(distance / 1,000 km) + 1.5 language + 1.5 colonial tie + 0.5 (log GDP_j -
log GDP_i) + 0.4 log(native_j / 1e6)``. Their stock is ``min(a native_i, b native_j)``
with ``a`` log-normal (median 5% / D, log-sd 0.9) and ``b`` log-normal (median 2%,
log-sd 0.9, at most 25%), at least 50 persons; if a column's foreign-born total
exceeds 60% of its native-born population it is scaled down to that.

The truth edge set: every native edge (i, i, k), k != i, and every (i, j, k), k != j, for
the N x D diaspora pairs (i, j): ``E = N (N - 1) (1 + D)`` edges (10,920 for N = 40;
1,115,730 for N = 231), ordered by birth, origin, destination. Each (i, j) pair is a
*group* that leaves j together. People of i who arrive in a country that is not one of
i's diaspora pairs stay there (they only die); to keep them few, destinations outside i's
network (i and its diaspora countries) get a pull-score penalty of 4 (a factor of about
2%), so those flows and the stocks they create are small but not zero.

Every year t, with the stocks ``S[t]`` of 1 January:

- out-rate of group (i, j): ``r = base * exp(push_j)`` capped at 0.3, with ``base`` =
  0.15% a year for natives (j == i) and 4% for the foreign-born, times a fixed
  log-normal group effect (log-sd 0.3), and ``push_j = 0.5 log1p(conflict_j / 1,000)
  + 0.25 (log 5,000 - log GDP_j)`` (conflict and poverty push people out);
- destination shares: softmax over k != j of the pull score
  ``0.8 (log GDP_k - log GDP_j) - 1.0 log(distance_jk / 1,000 km) + 1.0 language_ik +
  0.5 language_jk + 0.5 religion_ik + 1.0 colonial_ik + 1.0 club_j club_k - 0.5
  log1p(conflict_k / 1,000) + 0.4 log(population_k / 1e6) + 0.3 log1p(S[t, i, k] /
  1,000) (k != i: the diaspora network, which makes history matter) + 3.0 [k == i]
  (return) + 0.2 log1p(refugees[t, i, k]) + eta[t, e]``, where ``eta`` is a latent
  AR(1) per edge (rho 0.8, stationary sd 0.5);
- flows: ``T[t, e] = S[t, i, j] * r[t, i, j] * share[t, e]``;
- stocks (exactly :func:`migflow.accounting.step`): ``S[t+1, i, k] = delta_ik births[t,
  i] + (1 - d[t, k]) S[t, i, k] + sum_j T[t, i, j, k] - sum_k' T[t, i, k, k']`` with
  ``d = death_rate / 1000``. As ``r <= 0.3`` and ``d <= 0.018`` stocks stay positive.

Flows are computed in float64; for N > 60 the stored ``flow_table`` is float32 and the
recursion uses the float32-rounded flows, so the identity holds exactly for the stored
table. Truth variables: ``flow_table`` (year, edge) with coordinates ``edge_birth``,
``edge_origin``, ``edge_destination``; ``flow`` (year, origin, destination), the sum
over birth; ``stock`` (stock_year, birth, destination); ``net_migration`` (year,
country), column sums minus row sums of ``flow``.

5. Observations (separate noise stream)
---------------------------------------
- ``stock`` (census, birth, destination) at census years (every 5 years from
  ``first_year``, plus the last stock year): foreign-born cells with true value >= 1
  person get log-normal noise (sd 0.1) and are rounded; 10% of them are missing (NaN,
  independently per census and cell); cells below 1 person are observed as 0. As in UN
  DESA data, each destination's total foreign-born population is known (the sum of the
  noisy cells, missing ones included), and the diagonal is the observed population
  minus that total. ``stock_weight`` is 1 where observed and 0 where NaN.
- ``net_migration``: every country and year, truth + N(0, 0.05 |truth| + 300), rounded;
  weight 1.
- ``flow``: ``max(2, round(N / 3))`` reporting countries (drawn with probability
  proportional to their initial GDP rank) report immigration only (35%), emigration
  only (20%) or both (45%), from a start year ``first_year`` + 0, 10 or 20 (within the
  period). Immigration is under-counted by a factor U(0.85, 1.0) per reporter,
  emigration by U(0.5, 0.9); each figure has log-normal noise (sd 0.15) and is rounded.
  Where both ends report a corridor, the receiving country's figure is kept. NaN
  elsewhere and on the diagonal; ``flow_weight`` 1 where observed, else 0.
- ``births``, ``deaths`` and ``population`` are observed exactly (like WPP inputs); all
  covariates are complete (no NaN).
"""

from __future__ import annotations

import logging
import string
import time
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType

import numpy as np
import xarray as xr

from migflow import schema

log = logging.getLogger(__name__)

MIN_COUNTRIES = 5  # one country per region at least
MAX_COUNTRIES = 231  # the paper's country count
MIN_EXTRA_YEARS = 6  # last_year - first_year must be at least this
MAX_YEARS = 100
FLOAT64_MAX_N = 60  # flow_table stored as float64 up to this N, float32 above

# geography
PLANE_KM = (16_000.0, 8_000.0)
MIN_REGION_SEPARATION_KM = 3_500.0
COUNTRY_SPREAD_KM = 700.0
DISTANCE_FLOOR_KM = 100.0

# economy, demography, conflict
GDP_DRIFT, GDP_DRIFT_SD, GDP_SHOCK_SD, CONFLICT_GDP_LOSS = 0.02, 0.01, 0.03, 0.04
REFUGEE_DECAY, REFUGEES_PER_DEATH, REFUGEE_DISTANCE_KM = 0.8, 10.0, 1_500.0
CLUB_REGIONS, CLUB_JOIN_PROB, CLUB_FOUNDER_SHARE = 2, 0.75, 0.3
N_RELIGIONS = 6

# initial stock and out-rates
NATIVE_MEDIAN, NATIVE_LOG_SD, NATIVE_RANGE = 5e6, 1.5, (1e5, 1.4e9)
ABROAD_SHARE = 0.05  # median share of a birth country living abroad, split over D pairs
CLOSED_PENALTY = 4.0  # pull-score penalty of destinations outside a birth country's network
BASE_RATE_NATIVE, BASE_RATE_FOREIGN, GROUP_LOG_SD, MAX_RATE = 0.0015, 0.04, 0.3, 0.3
PUSH_CONFLICT, PUSH_POVERTY, PUSH_GDP_REF = 0.5, 0.25, 5_000.0

# pull score coefficients (see section 4 of the module docstring)
PULL = MappingProxyType({
    "gdp": 0.8, "distance": 1.0, "language_ik": 1.0, "language_jk": 0.5, "religion": 0.5,
    "colonial": 1.0, "club": 1.0, "conflict": 0.5, "population": 0.4, "network": 0.3,
    "return": 3.0, "refugees": 0.2,
})
ETA_RHO, ETA_SD = 0.8, 0.5

# observations
STOCK_NOISE_SD, STOCK_MISSING = 0.1, 0.1
NET_NOISE_REL, NET_NOISE_ABS = 0.05, 300.0
FLOW_NOISE_SD, IMMIGRATION_COUNT, EMIGRATION_COUNT = 0.15, (0.85, 1.0), (0.5, 0.9)
REPORTER_START_OFFSETS = (0, 10, 20)


@dataclass
class _Drivers:
    """Everything the flow process reads, as numpy arrays (Y years, N countries)."""

    region: np.ndarray  # (N,) region index
    distance: np.ndarray  # (N, N) km
    log_gdp: np.ndarray  # (Y + 1, N), row 0 is the year before first_year
    conflict: np.ndarray  # (Y, N) deaths
    eu: np.ndarray  # (Y, N) 0/1
    refugees: np.ndarray  # (Y, N, N)
    life_expectancy: np.ndarray  # (Y, N)
    birth_rate: np.ndarray  # (Y, N) per 1000
    death_rate: np.ndarray  # (Y, N) per 1000
    colonial: np.ndarray  # (N, N) 0/1
    language: np.ndarray  # (N, N)
    religion: np.ndarray  # (N, N)


@dataclass
class _Edges:
    """The truth edge set, as groups (i, j) times their N - 1 destinations."""

    gi: np.ndarray  # (G,) birth country of each group
    gj: np.ndarray  # (G,) residence (origin) of each group
    dest: np.ndarray  # (G, N - 1) destinations k != j
    n: int

    @cached_property
    def ij(self) -> np.ndarray:
        """Flat index of the stock each edge leaves, (G * (N - 1),)."""
        return np.repeat(self.gi * self.n + self.gj, self.dest.shape[1])

    @cached_property
    def ik(self) -> np.ndarray:
        """Flat index of the stock each edge joins, (G, N - 1)."""
        return self.gi[:, None] * self.n + self.dest

    @cached_property
    def jk(self) -> np.ndarray:
        """Flat index of each edge's residence corridor, (G, N - 1)."""
        return self.gj[:, None] * self.n + self.dest


# ---------------------------------------------------------------------------- validation

def _check_int(name: str, value: object, low: int, high: int, hint: str = "") -> int:
    """Return ``value`` as an int if it is an integer in low..high, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer in {low}..{high}, got {value!r}{hint}")
    if not low <= int(value) <= high:
        raise ValueError(f"{name} must be in {low}..{high}, got {value}{hint}")
    return int(value)


def _validate(n_countries: object, seed: object, first_year: object,
              last_year: object) -> tuple[int, int, int, int]:
    n = _check_int("n_countries (N)", n_countries, MIN_COUNTRIES, MAX_COUNTRIES,
                   f" (the synthetic world needs at least {MIN_COUNTRIES} countries, one per "
                   f"region, and at most {MAX_COUNTRIES}, the paper's country set)")
    seed = _check_int("seed", seed, 0, 2**63 - 1)
    first = _check_int("first_year", first_year, 1000, 3000)
    last = _check_int("last_year", last_year, first + MIN_EXTRA_YEARS, first + MAX_YEARS - 1,
                      f" (last_year must be > first_year + {MIN_EXTRA_YEARS - 1} = "
                      f"{first + MIN_EXTRA_YEARS - 1}, so that there are at least "
                      f"{MIN_EXTRA_YEARS + 1} flow years)")
    return n, seed, first, last


# ------------------------------------------------------------------------------ geography

def _n_regions(n: int) -> int:
    return int(np.clip(round(n / 30) + 4, 5, 8))


def _region_centres(rng: np.random.Generator, n_regions: int) -> np.ndarray:
    """Region centres on the plane, at least MIN_REGION_SEPARATION_KM apart (relaxed if stuck)."""
    separation = MIN_REGION_SEPARATION_KM
    centres: list[np.ndarray] = []
    tries = 0
    while len(centres) < n_regions:
        c = rng.uniform((0.0, 0.0), PLANE_KM)
        tries += 1
        if all(np.hypot(*(c - o)) >= separation for o in centres):
            centres.append(c)
        elif tries % 1000 == 0:
            separation *= 0.9
    return np.array(centres)


def _geography(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Region of each country, region centres (R, 2) and country positions (N, 2) in km."""
    n_regions = _n_regions(n)
    centres = _region_centres(rng, n_regions)
    sizes = 1 + rng.multinomial(n - n_regions, rng.dirichlet(np.full(n_regions, 3.0)))
    region = rng.permutation(np.repeat(np.arange(n_regions), sizes))
    xy = centres[region] + rng.normal(0.0, COUNTRY_SPREAD_KM, (n, 2))
    return region, centres, xy


def _distance(xy: np.ndarray) -> np.ndarray:
    """Euclidean distances (N, N) in km plus the floor."""
    diff = xy[:, None, :] - xy[None, :, :]
    return np.sqrt((diff**2).sum(-1)) + DISTANCE_FLOOR_KM


# ------------------------------------------------- economy, conflict, demography, the club

def _initial_log_gdp(rng: np.random.Generator, region: np.ndarray) -> np.ndarray:
    n_regions = region.max() + 1
    levels = rng.permutation(np.linspace(np.log(1_500), np.log(35_000), n_regions))
    levels = levels + rng.normal(0.0, 0.2, n_regions)
    return levels[region] + rng.normal(0.0, 0.5, region.size)


def _conflicts(rng: np.random.Generator, log_gdp0: np.ndarray, n_years: int) -> np.ndarray:
    """Conflict deaths (Y, N): rare bursts of 1-5 years, more likely in poor countries."""
    poor = 1.0 / (1.0 + np.exp(log_gdp0 - np.log(3_000)))
    starts = rng.random((n_years, log_gdp0.size)) < 0.01 + 0.04 * poor
    deaths = np.zeros((n_years, log_gdp0.size))
    for t, c in np.argwhere(starts):
        years = np.arange(t, min(t + rng.integers(1, 6), n_years))
        level = np.clip(np.exp(rng.normal(np.log(2_000), 1.2)), 100, 100_000)
        deaths[years, c] += level * np.exp(rng.normal(0.0, 0.4, years.size))
    return np.round(deaths)


def _log_gdp_paths(rng: np.random.Generator, log_gdp0: np.ndarray,
                   conflict: np.ndarray) -> np.ndarray:
    """Log GDP per capita (Y + 1, N): row 0 is the year before the first flow year."""
    drift = GDP_DRIFT + rng.normal(0.0, GDP_DRIFT_SD, log_gdp0.size)
    steps = drift + rng.normal(0.0, GDP_SHOCK_SD, conflict.shape)
    steps -= CONFLICT_GDP_LOSS * (conflict > 0)
    return log_gdp0 + np.vstack([np.zeros(log_gdp0.size), np.cumsum(steps, axis=0)])


def _vital_rates(rng: np.random.Generator,
                 log_gdp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Life expectancy (years), crude birth and death rates (per 1000), each (Y, N)."""
    n_years, n = log_gdp.shape
    x = log_gdp - np.log(1_000)
    trend = np.arange(n_years)[:, None]
    life = (55 + 6.4 * x + 0.12 * trend + rng.normal(0, 2.0, n)
            + rng.normal(0, 0.3, (n_years, n)))
    life = np.clip(life, 40, 86)
    birth = 42 - 8.5 * x - 0.15 * trend + rng.normal(0, 2.5, n) + rng.normal(0, 0.5, (n_years, n))
    death = 16 - 0.45 * (life - 55) + rng.normal(0, 1.0, n) + rng.normal(0, 0.2, (n_years, n))
    return life, np.clip(birth, 8, 45), np.clip(death, 4, 18)


def _club_regions(region: np.ndarray, log_gdp0: np.ndarray) -> np.ndarray:
    """The CLUB_REGIONS regions with the highest mean initial log GDP."""
    means = np.array([log_gdp0[region == r].mean() for r in range(region.max() + 1)])
    return np.argsort(-means)[:CLUB_REGIONS]


def _club(rng: np.random.Generator, region: np.ndarray, club_regions: np.ndarray,
          n_years: int) -> np.ndarray:
    """EU-like membership (Y, N): countries of the club regions join once and stay."""
    eligible = np.flatnonzero(np.isin(region, club_regions))
    joiners = eligible[rng.random(eligible.size) < CLUB_JOIN_PROB]
    if joiners.size < min(2, eligible.size):
        joiners = rng.choice(eligible, min(2, eligible.size), replace=False)
    joiners = rng.permutation(joiners)
    n_founders = max(2, round(CLUB_FOUNDER_SHARE * joiners.size))
    join_year = np.full(region.size, n_years)  # never
    join_year[joiners] = rng.integers(1, n_years, joiners.size)
    join_year[joiners[:n_founders]] = 0
    return (np.arange(n_years)[:, None] >= join_year[None, :]).astype(float)


def _refugees(conflict: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """Refugees (Y, birth, host): a decaying stock fed by conflict deaths, to near hosts."""
    weight = np.exp(-distance / REFUGEE_DISTANCE_KM)
    np.fill_diagonal(weight, 0.0)
    weight /= np.maximum(weight.sum(1, keepdims=True), 1e-300)
    out = np.zeros((conflict.shape[0],) + distance.shape)
    current = np.zeros(distance.shape)
    for t in range(conflict.shape[0]):
        current = REFUGEE_DECAY * current + REFUGEES_PER_DEATH * conflict[t][:, None] * weight
        out[t] = current
    return np.round(out)


# ----------------------------------------------------------- culture, history and trade

def _colonial_ties(rng: np.random.Generator, region: np.ndarray, log_gdp0: np.ndarray,
                   club_regions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric 0/1 colonial ties (N, N) and the coloniser indices."""
    n = region.size
    in_club = np.isin(region, club_regions)
    candidates = np.flatnonzero(in_club)
    n_col = int(np.clip(round(n / 30), 2, 6))
    colonisers = candidates[np.argsort(-log_gdp0[candidates])][:n_col]
    others = np.flatnonzero(~in_club)
    tie = np.zeros((n, n))
    if others.size == 0:
        return tie, colonisers
    for c in colonisers:
        preference = rng.dirichlet(np.full(region.max() + 1, 0.7)) + 0.02
        p = preference[region[others]]
        size = max(1, round(rng.uniform(0.10, 0.20) * others.size))
        colonies = rng.choice(others, size, replace=False, p=p / p.sum())
        tie[c, colonies] = tie[colonies, c] = 1.0
    return tie, colonisers


def _linguistic_similarity(rng: np.random.Generator, region: np.ndarray, centres: np.ndarray,
                           colonisers: np.ndarray, tie: np.ndarray) -> np.ndarray:
    """Cosine similarity of language-weight vectors: regional plus colonial languages."""
    n, n_regions = region.size, len(centres)
    weights = np.zeros((n, n_regions + colonisers.size))
    weights[np.arange(n), region] = 1.0
    centre_dist = np.hypot(*(centres[:, None, :] - centres[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(centre_dist, np.inf)
    nearest = centre_dist.argmin(1)
    border = np.flatnonzero(rng.random(n) < 0.25)
    weights[border, nearest[region[border]]] += rng.uniform(0.1, 0.5, border.size)
    for m, c in enumerate(colonisers):
        weights[c, n_regions + m] = 1.5
        colonies = np.flatnonzero(tie[c] > 0)
        weights[colonies, n_regions + m] += rng.uniform(0.3, 1.2, colonies.size)
    unit = weights / np.linalg.norm(weights, axis=1, keepdims=True)
    sim = np.clip(unit @ unit.T, 0.0, 1.0)
    np.fill_diagonal(sim, 1.0)
    return sim


def _religious_similarity(rng: np.random.Generator, region: np.ndarray) -> np.ndarray:
    """Inner product of Dirichlet religion shares with a dominant religion per region."""
    n_regions = region.max() + 1
    alpha = np.full((n_regions, N_RELIGIONS), 0.3)
    alpha[np.arange(n_regions), rng.integers(N_RELIGIONS, size=n_regions)] = 5.0
    shares = np.array([rng.dirichlet(alpha[r]) for r in region])
    return np.clip(shares @ shares.T, 0.0, 1.0)


def _trade(rng: np.random.Generator, gdp: np.ndarray, population: np.ndarray,
           distance: np.ndarray) -> np.ndarray:
    """Gravity trade (Y, exporter, importer) in USD, 0 on the diagonal."""
    size = gdp * population / 1e12  # total GDP in 1e12 USD, (Y, N)
    pair = np.exp(rng.normal(0.0, 1.0, distance.shape))
    noise = np.exp(rng.normal(0.0, 0.2, (gdp.shape[0],) + distance.shape))
    trade = 1e10 * (size[:, :, None] * size[:, None, :]) ** 0.8 / (distance / 1_000) * pair
    trade *= noise
    for t in range(trade.shape[0]):
        np.fill_diagonal(trade[t], 0.0)
    return trade


# -------------------------------------------------------------- initial stock and edges

def _n_diaspora(n: int) -> int:
    return int(np.clip(round(0.15 * n), 3, 20))


def _initial_stock(rng: np.random.Generator, drv: _Drivers) -> tuple[np.ndarray, np.ndarray]:
    """Initial stock S0 (N, N) and the diaspora residence countries (N, D) of each birth."""
    n = drv.region.size
    lo, hi = NATIVE_RANGE
    native = np.clip(np.exp(rng.normal(np.log(NATIVE_MEDIAN), NATIVE_LOG_SD, n)), lo, hi)
    lg0 = drv.log_gdp[0]
    score = (-1.2 * np.log(drv.distance / 1_000) + 1.5 * drv.language + 1.5 * drv.colonial
             + 0.5 * (lg0[None, :] - lg0[:, None]) + 0.4 * np.log(native / 1e6)[None, :])
    score += rng.gumbel(size=(n, n))
    np.fill_diagonal(score, -np.inf)
    diaspora = np.sort(np.argsort(-score, axis=1)[:, :_n_diaspora(n)], axis=1)
    a = np.exp(rng.normal(np.log(ABROAD_SHARE / diaspora.shape[1]), 0.9, diaspora.shape))
    b = np.minimum(np.exp(rng.normal(np.log(0.02), 0.9, diaspora.shape)), 0.25)
    abroad = np.maximum(np.minimum(a * native[:, None], b * native[diaspora]), 50.0)
    stock = np.diag(native)
    stock[np.arange(n)[:, None], diaspora] = abroad
    foreign = stock.sum(0) - native
    scale = np.minimum(1.0, 0.6 * native / np.maximum(foreign, 1.0))
    stock = stock * scale[None, :]
    stock[np.arange(n), np.arange(n)] = native
    return stock, diaspora


def _open_destinations(edges: _Edges, diaspora: np.ndarray) -> np.ndarray:
    """(G, N - 1) bool: destinations k in the migration network of birth country i.

    People born in i move mostly between i and the diaspora countries of i; any other
    destination gets a pull-score penalty of ``CLOSED_PENALTY`` (a factor e^-4 ~ 2%), so
    flows there are small but not zero, and the stocks they create stay small (most cells
    of the real bilateral stock tables are small or zero).
    """
    n = edges.n
    allowed = np.zeros((n, n), dtype=bool)
    allowed[np.arange(n)[:, None], diaspora] = True
    np.fill_diagonal(allowed, True)
    return allowed[edges.gi[:, None], edges.dest]


def _edge_groups(diaspora: np.ndarray) -> _Edges:
    """Groups (i, i) and (i, j in diaspora of i), sorted by (i, j), with destinations k != j."""
    n, n_dia = diaspora.shape
    gi = np.repeat(np.arange(n), 1 + n_dia)
    gj = np.column_stack([np.arange(n), diaspora]).ravel()
    order = np.lexsort((gj, gi))
    gi, gj = gi[order], gj[order]
    base = np.arange(n - 1)[None, :]
    return _Edges(gi=gi, gj=gj, dest=base + (base >= gj[:, None]), n=n)


# -------------------------------------------------------------------------- simulation

def _accounting_step(stock: np.ndarray, flows: np.ndarray, edges: _Edges, births: np.ndarray,
                     death_rate: np.ndarray) -> np.ndarray:
    """One year of :func:`migflow.accounting.step` in numpy (``flows`` flat, (E,))."""
    n = edges.n
    change = (np.bincount(edges.ik.ravel(), flows, minlength=n * n)
              - np.bincount(edges.ij, flows, minlength=n * n)).reshape(n, n)
    return (1.0 - death_rate)[None, :] * stock + np.diag(births) + change


def _static_pull(edges: _Edges, drv: _Drivers) -> np.ndarray:
    """The time-invariant part of the pull score, (G, N - 1)."""
    i, j, k = edges.gi[:, None], edges.gj[:, None], edges.dest
    return (-PULL["distance"] * np.log(drv.distance[j, k] / 1_000)
            + PULL["language_ik"] * drv.language[i, k] + PULL["language_jk"] * drv.language[j, k]
            + PULL["religion"] * drv.religion[i, k] + PULL["colonial"] * drv.colonial[i, k]
            + PULL["return"] * (k == i))


def _yearly_pull(t: int, stock: np.ndarray, population: np.ndarray, edges: _Edges,
                 drv: _Drivers) -> np.ndarray:
    """The time-varying part of the pull score in year t, (G, N - 1)."""
    lg = drv.log_gdp[t + 1]
    unilateral = (PULL["gdp"] * lg - PULL["conflict"] * np.log1p(drv.conflict[t] / 1_000)
                  + PULL["population"] * np.log(population / 1e6))
    network = stock.copy()
    np.fill_diagonal(network, 0.0)
    pair = (PULL["network"] * np.log1p(network / 1_000)
            + PULL["refugees"] * np.log1p(drv.refugees[t]))
    j, k = edges.gj[:, None], edges.dest
    return (unilateral[k] - PULL["gdp"] * lg[j] + PULL["club"] * drv.eu[t, j] * drv.eu[t, k]
            + pair.ravel()[edges.ik])


def _softmax_rows(score: np.ndarray) -> np.ndarray:
    """Row-wise softmax (the destination shares of each group)."""
    score = score - score.max(axis=1, keepdims=True)
    np.exp(score, out=score)
    score /= score.sum(axis=1, keepdims=True)
    return score


def _out_rates(rng: np.random.Generator, edges: _Edges, drv: _Drivers) -> np.ndarray:
    """Out-rates (Y, G) of every group, capped at MAX_RATE."""
    native = edges.gi == edges.gj
    base = np.where(native, BASE_RATE_NATIVE, BASE_RATE_FOREIGN)
    base = base * np.exp(rng.normal(0.0, GROUP_LOG_SD, base.size))
    push = (PUSH_CONFLICT * np.log1p(drv.conflict / 1_000)
            + PUSH_POVERTY * (np.log(PUSH_GDP_REF) - drv.log_gdp[1:]))
    return np.minimum(base[None, :] * np.exp(push[:, edges.gj]), MAX_RATE)


def _simulate(rng: np.random.Generator, stock0: np.ndarray, edges: _Edges, drv: _Drivers,
              dtype: type, open_destinations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run the world: stocks (Y + 1, N, N) float64 and the flow table (Y, E) in ``dtype``."""
    n_years = drv.conflict.shape[0]
    rates = _out_rates(rng, edges, drv)
    static = _static_pull(edges, drv) - np.where(open_destinations, 0.0, CLOSED_PENALTY)
    stocks = np.empty((n_years + 1,) + stock0.shape)
    stocks[0] = stock0
    table = np.empty((n_years, edges.dest.size), dtype=dtype)
    eta = ETA_SD * rng.standard_normal(edges.dest.shape)
    innovation_sd = ETA_SD * np.sqrt(1.0 - ETA_RHO**2)
    leaving_index = edges.gi * edges.n + edges.gj
    for t in range(n_years):
        if t:
            eta = ETA_RHO * eta + innovation_sd * rng.standard_normal(eta.shape)
        stock = stocks[t]
        population = stock.sum(0)
        share = _softmax_rows(static + _yearly_pull(t, stock, population, edges, drv) + eta)
        leaving = stock.ravel()[leaving_index] * rates[t]
        flows = (leaving[:, None] * share).ravel().astype(dtype)
        table[t] = flows
        births = drv.birth_rate[t] / 1000 * population
        stocks[t + 1] = _accounting_step(stock, flows.astype(np.float64), edges, births,
                                         drv.death_rate[t] / 1000)
    return stocks, table


def _corridor_flows(table: np.ndarray, edges: _Edges) -> np.ndarray:
    """Residence-based flows (Y, N, N) from the flow table."""
    n, jk = edges.n, edges.jk.ravel()
    return np.stack([np.bincount(jk, row.astype(np.float64), minlength=n * n).reshape(n, n)
                     for row in table])


# ------------------------------------------------------------------------ observations

def _census_years(first_year: int, last_stock_year: int) -> np.ndarray:
    """Every fifth stock year from the first, plus the last stock year."""
    years = list(range(first_year, last_stock_year + 1, 5))
    if years[-1] != last_stock_year:
        years.append(last_stock_year)
    return np.array(years)


def _observe_stock(rng: np.random.Generator, true_stock: np.ndarray) -> np.ndarray:
    """Observed stock tables (C, N, N) at the census years (NaN = missing)."""
    n = true_stock.shape[-1]
    foreign = ~np.eye(n, dtype=bool)[None, :, :].repeat(true_stock.shape[0], 0)
    noisy = np.round(true_stock * np.exp(rng.normal(0.0, STOCK_NOISE_SD, true_stock.shape)))
    noisy[true_stock < 1.0] = 0.0
    noisy[~foreign] = 0.0
    population = true_stock.sum(1)  # (C, N), observed exactly
    native = np.maximum(population - noisy.sum(1), 0.0)
    missing = foreign & (true_stock >= 1.0) & (rng.random(true_stock.shape) < STOCK_MISSING)
    observed = np.where(missing, np.nan, noisy)
    idx = np.arange(n)
    observed[:, idx, idx] = native
    return observed


def _observe_net(rng: np.random.Generator, net: np.ndarray) -> np.ndarray:
    sd = NET_NOISE_REL * np.abs(net) + NET_NOISE_ABS
    return np.round(net + sd * rng.standard_normal(net.shape))


def _reporters(rng: np.random.Generator, log_gdp0: np.ndarray,
               n_years: int) -> list[tuple[int, bool, bool, int]]:
    """Reporting countries: (country, immigration?, emigration?, first index year)."""
    n = log_gdp0.size
    rank = np.argsort(np.argsort(log_gdp0)) + 1.0
    chosen = rng.choice(n, max(2, round(n / 3)), replace=False, p=rank / rank.sum())
    offsets = [o for o in REPORTER_START_OFFSETS if o < n_years]
    out = []
    for c in np.sort(chosen):
        u = rng.random()
        out.append((int(c), u < 0.8, u >= 0.35, int(rng.choice(offsets))))
    return out


def _observe_flows(rng: np.random.Generator, flow: np.ndarray,
                   log_gdp0: np.ndarray) -> tuple[np.ndarray, list[tuple[int, bool, bool, int]]]:
    """Reported flows (Y, N, N): receiving-country figures win over sending-country ones."""
    reporters = _reporters(rng, log_gdp0, flow.shape[0])
    observed = np.full(flow.shape, np.nan)
    noise = np.exp(rng.normal(0.0, FLOW_NOISE_SD, (2,) + flow.shape))
    count = {c: (rng.uniform(*IMMIGRATION_COUNT), rng.uniform(*EMIGRATION_COUNT))
             for c, _, _, _ in reporters}
    for c, _, emi, start in reporters:  # emigration first, so immigration overwrites
        if emi:
            observed[start:, c, :] = flow[start:, c, :] * count[c][1] * noise[1, start:, c, :]
    for c, imm, _, start in reporters:
        if imm:
            observed[start:, :, c] = flow[start:, :, c] * count[c][0] * noise[0, start:, :, c]
    idx = np.arange(flow.shape[1])
    observed[:, idx, idx] = np.nan
    return np.round(observed), reporters


# -------------------------------------------------------------------------- assembling

def _coords(n: int, region: np.ndarray, first_year: int, last_year: int) -> dict:
    codes = np.array([f"S{c + 1:03d}" for c in range(n)])
    names = np.array([f"Synthland {c + 1}" for c in range(n)])
    regions = np.array([f"Synthetic region {string.ascii_uppercase[r]}" for r in region])
    return {
        "country": codes, "birth": codes, "origin": codes, "destination": codes,
        "country_name": ("country", names), "region": ("country", regions),
        "year": np.arange(first_year, last_year + 1),
        "stock_year": np.arange(first_year, last_year + 2),
    }


def _attrs(n: int, seed: int, first_year: int, last_year: int, kind: str) -> dict:
    return {
        "title": f"SYNTHETIC world: {n} countries, seed {seed} ({kind})",
        "data_source": "synthetic", "seed": seed, "n_countries": n,
        "first_year": first_year, "last_year": last_year,
        "comment": ("Simulated by migflow.synthetic.build_world. These are NOT real data: "
                    "countries, covariates, stocks and flows are all made up, with a known "
                    "truth for testing the estimation method."),
    }


def _truth_dataset(coords: dict, stocks: np.ndarray, table: np.ndarray, flow: np.ndarray,
                   edges: _Edges) -> xr.Dataset:
    codes = coords["country"]
    i = np.repeat(edges.gi, edges.dest.shape[1])
    j = np.repeat(edges.gj, edges.dest.shape[1])
    k = edges.dest.ravel()
    values = {"flow_table": table, "flow": flow, "stock": stocks,
              "net_migration": flow.sum(1) - flow.sum(2)}
    ds = xr.Dataset({name: (schema.TRUTH_VARS[name].dims, v) for name, v in values.items()},
                    coords=coords)
    ds = ds.assign_coords(edge_birth=("edge", codes[i]), edge_origin=("edge", codes[j]),
                          edge_destination=("edge", codes[k]))
    return schema.add_attrs(ds, schema.TRUTH_VARS)


def _observation_values(rng: np.random.Generator, drv: _Drivers, stocks: np.ndarray,
                        flow: np.ndarray, net: np.ndarray, trade: np.ndarray,
                        census_index: np.ndarray) -> dict[str, np.ndarray]:
    population = stocks.sum(1)
    y = flow.shape[0]
    values = {
        "gdp_per_capita": np.exp(drv.log_gdp[1:]),
        "gdp_growth": 100.0 * np.expm1(np.diff(drv.log_gdp, axis=0)),
        "trade": trade, "population": population, "life_expectancy": drv.life_expectancy,
        "birth_rate": drv.birth_rate, "death_rate": drv.death_rate, "distance": drv.distance,
        "linguistic_similarity": drv.language, "religious_similarity": drv.religion,
        "conflict_deaths": drv.conflict, "refugees": drv.refugees,
        "colonial_tie": drv.colonial, "eu_member": drv.eu,
        "births": drv.birth_rate / 1000 * population[:y],
        "deaths": drv.death_rate / 1000 * population[:y],
        "stock": _observe_stock(rng, stocks[census_index]),
        "net_migration": _observe_net(rng, net),
    }
    values["flow"], reporters = _observe_flows(rng, flow, drv.log_gdp[0])
    log.debug("flow reporters (country, immigration, emigration, start index): %s", reporters)
    for name in schema.TARGET_VARS:
        values[f"{name}_weight"] = np.isfinite(values[name]).astype(float)
    return values


# ------------------------------------------------------------------------------ public

def _drivers(rng: np.random.Generator, n: int, n_years: int) -> _Drivers:
    """Draw every covariate except trade (which needs the population)."""
    region, centres, xy = _geography(rng, n)
    distance = _distance(xy)
    lg0 = _initial_log_gdp(rng, region)
    conflict = _conflicts(rng, lg0, n_years)
    log_gdp = _log_gdp_paths(rng, lg0, conflict)
    life, birth, death = _vital_rates(rng, log_gdp[1:])
    club_regions = _club_regions(region, lg0)
    eu = _club(rng, region, club_regions, n_years)
    colonial, colonisers = _colonial_ties(rng, region, lg0, club_regions)
    language = _linguistic_similarity(rng, region, centres, colonisers, colonial)
    religion = _religious_similarity(rng, region)
    drv = _Drivers(region=region, distance=distance, log_gdp=log_gdp, conflict=conflict, eu=eu,
                   refugees=_refugees(conflict, distance), life_expectancy=life,
                   birth_rate=birth, death_rate=death, colonial=colonial, language=language,
                   religion=religion)
    return drv


def build_world(n_countries: int = 40, seed: int = 0, first_year: int = 1990,
                last_year: int = 2023) -> tuple[xr.Dataset, xr.Dataset]:
    """Build the synthetic world: observations and the truth behind them.

    Parameters
    ----------
    n_countries : int
        Number of countries N, 5..231.
    seed : int
        Non-negative seed; the same seed gives identical datasets.
    first_year, last_year : int
        First and last flow year; ``last_year`` must exceed ``first_year + 5``. Stocks
        run from 1 January ``first_year`` to 1 January ``last_year + 1``.

    Returns
    -------
    observations : xarray.Dataset
        All variables of :data:`migflow.schema.OBSERVATION_VARS`; passes
        :func:`migflow.schema.check_observations`.
    truth : xarray.Dataset
        The variables of :data:`migflow.schema.TRUTH_VARS` (``flow_table`` on the truth
        edge set, with coordinates ``edge_birth``, ``edge_origin``, ``edge_destination``).

    Raises
    ------
    ValueError
        If an argument is not an integer in its allowed range (the message names it).
    """
    n, seed, first_year, last_year = _validate(n_countries, seed, first_year, last_year)
    start = time.perf_counter()
    world_seq, obs_seq = np.random.SeedSequence(seed).spawn(2)
    rng, obs_rng = np.random.default_rng(world_seq), np.random.default_rng(obs_seq)
    n_years = last_year - first_year + 1
    drv = _drivers(rng, n, n_years)
    stock0, diaspora = _initial_stock(rng, drv)
    edges = _edge_groups(diaspora)
    dtype = np.float64 if n <= FLOAT64_MAX_N else np.float32
    stocks, table = _simulate(rng, stock0, edges, drv, dtype,
                              _open_destinations(edges, diaspora))
    flow = _corridor_flows(table, edges)
    trade = _trade(rng, np.exp(drv.log_gdp[1:]), stocks[:-1].sum(1), drv.distance)
    coords = _coords(n, drv.region, first_year, last_year)
    truth = _truth_dataset(coords, stocks, table, flow, edges)
    census = _census_years(first_year, last_year + 1)
    values = _observation_values(obs_rng, drv, stocks, flow, truth["net_migration"].values,
                                 trade, census - first_year)
    obs = xr.Dataset({name: (schema.OBSERVATION_VARS[name].dims, values[name])
                      for name in schema.OBSERVATION_VARS},
                     coords={**coords, "census": census})
    obs = schema.add_attrs(obs, schema.OBSERVATION_VARS)
    obs.attrs.update(_attrs(n, seed, first_year, last_year, "observations"))
    truth.attrs.update(_attrs(n, seed, first_year, last_year, "truth"))
    log.info("built synthetic world: N=%d, %d years, %d truth edges in %.1f s",
             n, n_years, table.shape[1], time.perf_counter() - start)
    return obs, truth


def world_summary(truth: xr.Dataset) -> dict[str, float]:
    """Headline numbers of a truth dataset (for logs, notebooks and reports).

    Parameters
    ----------
    truth : xarray.Dataset
        The truth returned by :func:`build_world`.

    Returns
    -------
    dict of str to float
        Number of edges, smallest and largest global annual flow (persons), and the
        foreign-born share of the population in the first and last stock year.
    """
    total = truth["flow"].sum(("origin", "destination")).values
    stock = truth["stock"].values
    diag = np.trace(stock, axis1=1, axis2=2)
    share = 1.0 - diag / stock.sum((1, 2))
    return {"n_edges": float(truth.sizes["edge"]), "min_global_flow": float(total.min()),
            "max_global_flow": float(total.max()), "migrant_share_first": float(share[0]),
            "migrant_share_last": float(share[-1])}
