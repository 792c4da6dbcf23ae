"""Raw data of the built-in competitions: bundled sets (scikit-learn, statsmodels) and seeded generators.

Each ``make_<name>(rng)`` returns ``(features, target)`` as a DataFrame and a Series. Nothing is downloaded:
scikit-learn's ``load_*`` and ``make_*`` and statsmodels' ``datasets`` ship their data inside the packages. Where a
dataset has no missing values or categorical columns of its own, missingness is injected with a documented
mechanism (MCAR: independent of everything; MNAR: the probability of being missing depends on the value itself), so
imputation and encoding choices matter.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import datasets as skd


def _mcar(rng: np.random.RandomState, column: pd.Series, rate: float) -> pd.Series:
    """Missing completely at random with probability ``rate``."""
    return column.mask(rng.rand(len(column)) < rate)


def _mnar(rng: np.random.RandomState, column: pd.Series, high_rate: float, low_rate: float,
          quantile: float = 0.8, upper: bool = True) -> pd.Series:
    """Missing not at random: values above (or below) the column's ``quantile`` go missing at ``high_rate``."""
    cut = column.quantile(quantile)
    extreme = column > cut if upper else column < cut
    rate = np.where(extreme, high_rate, low_rate)
    return column.mask(rng.rand(len(column)) < rate)


def _frame(x: np.ndarray, prefix: str = "x") -> pd.DataFrame:
    return pd.DataFrame(x, columns=[f"{prefix}{i}" for i in range(x.shape[1])])


def make_friedman1(rng):
    x, y = skd.make_friedman1(n_samples=2500, n_features=10, noise=1.0, random_state=rng)
    frame = _frame(x)
    for col in ("x0", "x3", "x7"):
        frame[col] = _mcar(rng, frame[col], 0.1)
    return frame, pd.Series(y)


def make_friedman3(rng):
    x, y = skd.make_friedman3(n_samples=2500, noise=0.1, random_state=rng)
    frame = pd.DataFrame(x, columns=["resistance", "frequency", "inductance", "capacitance"])
    noise = _frame(rng.randn(len(frame), 4) * [1, 10, 100, 1000], prefix="aux")
    return pd.concat([frame, noise], axis=1), pd.Series(y)


def make_hastie(rng):
    x, y = skd.make_hastie_10_2(n_samples=2600, random_state=rng)
    return _frame(x), pd.Series((y > 0).astype(int))


def make_synth3(rng):
    x, y = skd.make_classification(n_samples=3000, n_features=20, n_informative=6, n_redundant=4, n_classes=3,
                                   n_clusters_per_class=2, class_sep=0.8, flip_y=0.03, random_state=rng)
    return _frame(x), pd.Series(np.array(["red", "green", "blue"])[y])


def _with_distractors(rng, x: np.ndarray, n_distractors: int) -> pd.DataFrame:
    """Signal columns plus pure-noise columns on scales from 0.1 to 100 (so scaling and selection matter)."""
    scales = 10.0 ** rng.uniform(-1, 2, size=n_distractors)
    noise = rng.randn(len(x), n_distractors) * scales
    columns = np.column_stack([x, noise])
    order = rng.permutation(columns.shape[1])
    return _frame(columns[:, order], prefix="f")


def make_moons(rng):
    x, y = skd.make_moons(n_samples=3000, noise=0.3, random_state=rng)
    return _with_distractors(rng, x * [3.0, 0.5], 10), pd.Series(y)


def make_circles(rng):
    x, y = skd.make_circles(n_samples=3000, noise=0.15, factor=0.6, random_state=rng)
    return _with_distractors(rng, x * 20.0, 6), pd.Series(y)


def make_digits(rng):
    x, y = skd.load_digits(return_X_y=True)
    frame = _frame(x.astype(float), prefix="px")
    return frame.mask(rng.rand(*frame.shape) < 0.25), pd.Series(np.array([f"d{d}" for d in y]))


def make_star98(rng):
    import statsmodels.api as sm

    data = sm.datasets.star98.load_pandas().data
    target = data["NABOVE"] / (data["NABOVE"] + data["NBELOW"])
    return data.drop(columns=["NABOVE", "NBELOW"]).reset_index(drop=True), target.reset_index(drop=True)


def make_grunfeld(rng):
    import statsmodels.api as sm

    data = sm.datasets.grunfeld.load_pandas().data
    frame = data[["value", "capital", "firm", "year"]].copy()
    frame["firm"] = frame["firm"].astype(str)
    return frame, data["invest"]


def make_fair(rng):
    import statsmodels.api as sm

    data = sm.datasets.fair.load_pandas().data.reset_index(drop=True)
    target = pd.Series(np.select([data["affairs"] == 0, data["affairs"] <= 1.0], ["none", "some"], "many"))
    frame = data.drop(columns=["affairs"]).copy()
    for col in ("occupation", "occupation_husb", "religious"):
        frame[col] = col[:3] + frame[col].astype(int).astype(str)
    frame["yrs_married"] = _mnar(rng, frame["yrs_married"], 0.3, 0.05)
    frame["educ"] = _mcar(rng, frame["educ"], 0.1)
    return frame, target


def make_housing(rng, n: int = 3000):
    """House prices: log-linear in area with district, condition and an age U-shape; skewed target."""
    districts = np.array([f"dist{i}" for i in range(10)])
    district = rng.choice(10, size=n)
    district_effect = rng.normal(0, 0.3, size=10)
    central = district < 3
    area = np.exp(rng.normal(4.3, 0.35, size=n))
    rooms = np.clip(np.round(area / 25 + rng.normal(0, 0.8, size=n)), 1, 8)
    age = rng.uniform(0, 100, size=n)
    distance = np.exp(rng.normal(1.5, 0.6, size=n))
    condition = rng.choice(4, size=n, p=[0.15, 0.35, 0.35, 0.15])
    heating = rng.choice(["gas", "electric", "heatpump", "oil"], size=n)
    log_price = (0.9 * np.log(area) + district_effect[district] - 0.15 * np.log(distance) * (1 + central)
                 + np.array([-0.2, -0.05, 0.05, 0.2])[condition] + 0.25 * ((age - 50) / 50) ** 2
                 + 0.1 * (heating == "heatpump") + rng.normal(0, 0.15, size=n))
    frame = pd.DataFrame({
        "area": area.round(1), "rooms": rooms, "age": age.round(0), "distance_km": distance.round(2),
        "district": districts[district], "condition": np.array(["poor", "fair", "good", "excellent"])[condition],
        "heating": heating,
    })
    frame["area"] = _mnar(rng, frame["area"], 0.25, 0.05)
    frame["age"] = _mcar(rng, frame["age"], 0.15)
    frame["heating"] = frame["heating"].mask(rng.rand(n) < 0.1)
    return frame, pd.Series(np.round(np.exp(log_price + 1.5), 1))


def make_churn(rng, n: int = 4000):
    """Customer churn: contract x tenure interaction, a support-call threshold and informative missingness."""
    contract = rng.choice(["month", "year", "two_year"], size=n, p=[0.5, 0.3, 0.2])
    tenure = rng.uniform(0, 72, size=n)
    charges = np.clip(rng.normal(70, 25, size=n), 15, 150)
    plan = rng.choice(6, size=n)
    plan_effect = rng.normal(0, 0.4, size=6)
    region = rng.choice([f"reg{i}" for i in range(8)], size=n)
    calls = rng.poisson(1.5, size=n).astype(float)
    usage = np.exp(rng.normal(3, 1, size=n))
    monthly = contract == "month"
    logit = (-1.0 + 1.5 * monthly - 0.05 * tenure * monthly - 0.015 * tenure * ~monthly
             + 1.0 * (calls >= 4) + 0.02 * (charges - 70) + plan_effect[plan]
             + 0.6 * np.sin(np.log(usage)) + rng.normal(0, 0.5, size=n))
    churned = (rng.rand(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame({
        "tenure_months": tenure.round(0), "contract": contract, "monthly_charges": charges.round(2),
        "plan": np.array([f"plan{i}" for i in range(6)])[plan], "region": region, "support_calls": calls,
        "usage_gb": usage.round(2),
    })
    frame["usage_gb"] = _mcar(rng, frame["usage_gb"], 0.2)
    frame["support_calls"] = frame["support_calls"].mask(rng.rand(n) < np.where(calls >= 4, 0.4, 0.05))
    return frame, pd.Series(churned)


def make_credit(rng, n: int = 3500):
    """Credit grade A/B/C from a thresholded latent risk with categorical employment, home and purpose."""
    income = np.exp(rng.normal(10.5, 0.6, size=n))
    debt_ratio = rng.beta(2, 5, size=n)
    age = rng.uniform(21, 75, size=n)
    accounts = rng.poisson(4, size=n).astype(float)
    employment = rng.choice(["salaried", "self", "contract", "unemployed", "retired"], size=n,
                            p=[0.5, 0.15, 0.15, 0.1, 0.1])
    home = rng.choice(["own", "rent", "mortgage"], size=n)
    purpose = rng.choice(["car", "home", "education", "business", "travel", "debt"], size=n)
    risk = (-0.8 * (np.log(income) - 10.5) + 3.0 * (debt_ratio - 0.3) ** 2 * 10 - 0.02 * (age - 45)
            + 0.3 * np.abs(accounts - 4) + pd.Series(employment).map(
                {"salaried": -0.4, "self": 0.2, "contract": 0.3, "unemployed": 1.2, "retired": 0.0}).to_numpy()
            + 0.3 * (home == "rent") + 0.4 * np.isin(purpose, ["business", "travel"])
            + rng.normal(0, 0.5, size=n))
    grade = np.select([risk < -0.3, risk < 0.6], ["A", "B"], "C")
    frame = pd.DataFrame({"income": income.round(0), "debt_ratio": debt_ratio.round(3), "age": age.round(0),
                          "accounts": accounts, "employment": employment, "home": home, "purpose": purpose})
    frame["income"] = _mnar(rng, frame["income"], 0.3, 0.05, quantile=0.2, upper=False)
    frame["employment"] = frame["employment"].mask(rng.rand(n) < 0.1)
    return frame, pd.Series(grade)


# --- The held-out set (fixed in session 4, before any policy ran on it). ---


def make_friedman2(rng):
    """Impedance of an RLC circuit: four inputs on scales from 1 to 1700, three noise columns, 10% MCAR in one."""
    x, y = skd.make_friedman2(n_samples=2500, noise=60.0, random_state=rng)
    frame = pd.DataFrame(x, columns=["resistance", "frequency", "inductance", "capacitance"])
    frame["frequency"] = _mcar(rng, frame["frequency"], 0.1)
    noise = _frame(rng.randn(len(frame), 3) * [0.5, 50.0, 5000.0], prefix="aux")
    return pd.concat([frame, noise], axis=1), pd.Series(y)


def make_xor(rng, n: int = 3000):
    """A noisy sign(a * b) interaction plus two weak additive signals among eight distractors."""
    a, b = rng.randn(n), rng.randn(n)
    c, d = rng.randn(n), rng.uniform(0, 10, size=n)
    logit = 2.5 * np.sign(a * b) * np.minimum(np.abs(a * b), 1.5) + 0.6 * c - 0.15 * (d - 5)
    y = (rng.rand(n) < 1 / (1 + np.exp(-logit))).astype(int)
    signal = np.column_stack([a * 4.0, b * 0.2, c, d])
    return _with_distractors(rng, signal, 8), pd.Series(y)


def make_blobs(rng, n: int = 3000):
    """Four classes of two overlapping blobs each in 6 dimensions, skewed onto very different scales, 5 distractors."""
    x, y = skd.make_blobs(n_samples=n, n_features=6, centers=8, cluster_std=1.6, center_box=(-5.0, 5.0),
                          random_state=rng)
    x = x @ rng.normal(0, 1, size=(6, 6)) * 10.0 ** rng.uniform(-1, 1.5, size=6)
    return _with_distractors(rng, x, 5), pd.Series(np.array(["north", "south", "east", "west"])[y % 4])


def make_insurance(rng, n: int = 4000):
    """Yearly claim cost: a smoker x BMI interaction, an age curve, region and plan effects; heavy right tail."""
    age = rng.uniform(18, 80, size=n)
    bmi = np.clip(rng.normal(28, 5, size=n), 16, 40)
    smoker = rng.rand(n) < 0.2
    children = rng.poisson(1.0, size=n).astype(float)
    region = rng.choice(["north", "south", "east", "west", "central"], size=n)
    plan = rng.choice(["basic", "standard", "premium"], size=n, p=[0.5, 0.35, 0.15])
    region_effect = dict(zip(["north", "south", "east", "west", "central"], rng.normal(0, 0.15, size=5), strict=True))
    log_cost = (7.5 + 0.025 * age + 0.00025 * (age - 45) ** 2 + 0.9 * smoker + 0.04 * np.maximum(bmi - 30, 0)
                * (1 + 2 * smoker) + 0.05 * children + pd.Series(region).map(region_effect).to_numpy()
                + pd.Series(plan).map({"basic": -0.2, "standard": 0.0, "premium": 0.35}).to_numpy()
                + rng.normal(0, 0.2, size=n))
    frame = pd.DataFrame({"age": age.round(0), "bmi": bmi.round(1), "smoker": np.where(smoker, "yes", "no"),
                          "children": children, "region": region, "plan": plan})
    frame["bmi"] = _mnar(rng, frame["bmi"], 0.3, 0.05)
    frame["region"] = frame["region"].mask(rng.rand(n) < 0.1)
    return frame, pd.Series(np.round(np.exp(log_cost) / 1000.0, 3))


def make_loans(rng, n: int = 4000):
    """Loan default: threshold effects in utilisation and delinquencies, a term x rate interaction, informative gaps."""
    amount = np.exp(rng.normal(9.3, 0.7, size=n))
    rate = rng.uniform(4, 25, size=n)
    term = rng.choice([36, 60], size=n, p=[0.7, 0.3])
    utilisation = rng.beta(2, 3, size=n)
    delinquencies = rng.poisson(0.4, size=n).astype(float)
    history = rng.uniform(1, 30, size=n)
    grade = rng.choice(["g1", "g2", "g3", "g4", "g5", "g6", "g7"], size=n)
    grade_effect = dict(zip([f"g{i}" for i in range(1, 8)], np.sort(rng.normal(0, 0.5, size=7)), strict=True))
    purpose = rng.choice(["car", "home", "debt", "medical", "business"], size=n)
    logit = (-0.1 + 2.5 * (utilisation > 0.7) + 1.5 * (delinquencies >= 2) + 0.15 * (rate - 12) * (term == 60)
             + 0.03 * (rate - 12) - 0.8 * np.log(history) + 0.3 * (np.log(amount) - 9.3)
             + pd.Series(grade).map(grade_effect).to_numpy() * 2 + 1.0 * (purpose == "business")
             + rng.normal(0, 0.4, size=n))
    default = (rng.rand(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame({"amount": amount.round(0), "rate": rate.round(2), "term": term.astype(float),
                          "utilisation": utilisation.round(3), "delinquencies": delinquencies,
                          "history_years": history.round(1), "grade": grade, "purpose": purpose})
    frame["delinquencies"] = frame["delinquencies"].mask(rng.rand(n) < np.where(delinquencies >= 2, 0.4, 0.05))
    frame["history_years"] = _mcar(rng, frame["history_years"], 0.15)
    return frame, pd.Series(default)


def make_energy(rng, n: int = 3000):
    """Building energy rating (A-D) from a nonlinear load with building-type and insulation effects."""
    area = np.exp(rng.normal(5.0, 0.5, size=n))
    year = rng.uniform(1900, 2020, size=n)
    glazing = rng.uniform(0.1, 0.6, size=n)
    height = rng.choice([1, 2, 3, 4, 6, 10], size=n).astype(float)
    kind = rng.choice(["house", "terrace", "flat", "office", "school"], size=n)
    insulation = rng.choice(["none", "partial", "full"], size=n, p=[0.25, 0.45, 0.3])
    kind_effect = dict(zip(["house", "terrace", "flat", "office", "school"], rng.normal(0, 0.3, size=5), strict=True))
    load = (np.where(year < 1950, 0.8, np.where(year < 1990, 0.3, -0.4)) + 1.5 * (glazing - 0.3) ** 2 * 10
            - 0.3 * np.log(area / 150) * (height > 3) + pd.Series(kind).map(kind_effect).to_numpy()
            + pd.Series(insulation).map({"none": 0.6, "partial": 0.0, "full": -0.5}).to_numpy()
            + rng.normal(0, 0.35, size=n))
    rating = np.select([load < -0.3, load < 0.3, load < 0.9], ["A", "B", "C"], "D")
    frame = pd.DataFrame({"floor_area": area.round(1), "year_built": year.round(0), "glazing_ratio": glazing.round(3),
                          "storeys": height, "building": kind, "insulation": insulation})
    frame["year_built"] = _mnar(rng, frame["year_built"], 0.3, 0.05, quantile=0.25, upper=False)
    frame["insulation"] = frame["insulation"].mask(rng.rand(n) < 0.15)
    return frame, pd.Series(rating)
