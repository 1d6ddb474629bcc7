"""The hidden truth of the demo base: a monthly latent state per account and the churn hazard on it.

Everything observable (usage, tickets, invoices, surveys, seats) is later *drawn from* this state,
and churn is drawn month by month as Bernoulli(hazard). Because the latent path never depends on
the churn draws, P(churn within 90 days | path, active at as_of) is exactly
1 - prod(1 - h) over the three months from as_of, which is the ground truth we publish.
The model is documented term by term in docs/DEMO_DATA.md; keep the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

DRIVER_FAMILIES = (
    "usage_decline",
    "low_licence_utilisation",
    "poor_onboarding",
    "support_escalations",
    "late_payments",
    "low_nps",
    "disengagement",
    "contract_plan",
)

SEGMENTS = ("SMB", "mid-market", "enterprise")
PLANS = ("starter", "growth", "enterprise")
BURN_IN = 6  # months simulated before `start` so the installed base starts in a settled state
AFTER = 2  # months simulated after the data end so p_churn_90d exists for the last as_of dates

OUTAGE_RATE = 0.035  # chance per month that an incident hits an account

# Hazard: logit h = INTERCEPT + sum of the family terms (_family_terms) + hidden.
INTERCEPT = -6.45
SEGMENT_OFFSET = np.array([0.45, 0.0, -0.5], dtype=np.float32)
PLAN_OFFSET = np.array([0.2, 0.0, -0.25], dtype=np.float32)
RENEWAL_OFFSET = 2.2  # annual terms: the renewal month concentrates a year of churn risk
MIDTERM_OFFSET = -2.3  # annual terms between renewals: only closures and breaches
INTERACTION = 1.2  # extra weight of escalations for monthly terms (they can leave any month)


@dataclass(frozen=True)
class Base:
    """The static commercial facts the latent model needs, one entry per account."""

    segment: np.ndarray  # int8 index into SEGMENTS
    plan: np.ndarray  # int8 index into PLANS
    annual: np.ndarray  # bool: annual term (else monthly)
    created_month: np.ndarray  # int32: month of creation relative to `start` (negative: installed base)


@dataclass(frozen=True)
class Latent:
    """The simulated monthly path; 2-D arrays are (account, month) with column j = month j - BURN_IN.

    Counts and seats are latent too: they follow the path whether or not the account has churned,
    so the hazard of a month never depends on an earlier churn draw.
    """

    months: int  # observed months; columns run over BURN_IN + months + AFTER
    onboarding: np.ndarray  # (N,) probability that a new user gets going in the first 30 days
    champion: np.ndarray  # bool: an internal champion is in place
    usage: np.ndarray  # usage level L (log scale; a champion-less account drifts ~1.6 below its norm)
    active_share: np.ndarray  # probability that an onboarded user uses the product in the month
    users: np.ndarray  # int: provisioned users at month start
    joins: np.ndarray  # int: users added during the month
    leaves: np.ndarray  # int: users removed during the month
    seats: np.ndarray  # int: seats in force at month start
    seats_end: np.ndarray  # int: seats after this month's change (at the billing anniversary)
    outage: np.ndarray  # severity of an incident hitting the account this month (0 = none)
    escalation_rate: np.ndarray  # expected escalated tickets in the month
    late_pay: np.ndarray  # probability that an invoice of the month is paid late
    sentiment: np.ndarray  # expected NPS answer (0-10 scale)
    responsiveness: np.ndarray  # probability of responding to outreach
    terms: dict[str, np.ndarray]  # family -> log-odds term of the month's hazard
    hazard: np.ndarray  # monthly churn probability (0 where churn is impossible)
    traits: Traits  # the account constants of the dynamics
    carried: dict[str, np.ndarray]  # float64 state at each month end: usage, pay, sentiment, respond, budget


def _ramp(x: np.ndarray, full: float, none: float) -> np.ndarray:
    """1 at or beyond `full`, 0 at or before `none`, linear between: a threshold with saturation."""
    return np.clip((none - x) / (none - full), 0.0, 1.0)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class Traits:
    """Per-account constants of the latent model (indexable, so continuations can replicate rows)."""

    annual: np.ndarray  # bool
    new: np.ndarray  # bool: created inside the simulated window (starts small, keeps onboarding)
    mu_usage: np.ndarray
    onboarding: np.ndarray
    share_base: np.ndarray
    target: np.ndarray
    mu_sentiment: np.ndarray
    mu_respond: np.ndarray
    mu_pay: np.ndarray
    frailty: np.ndarray
    onb_factor: np.ndarray

    def take(self, rows: np.ndarray) -> Traits:
        return Traits(*(getattr(self, f.name)[rows] for f in fields(self)))


@dataclass
class State:
    """The carried state at the end of a month (float64 where the dynamics are continuous)."""

    champion: np.ndarray  # bool
    severity: np.ndarray  # this month's incident severity (0 = none)
    usage: np.ndarray
    pay: np.ndarray  # payment-stress logit
    sentiment: np.ndarray
    respond: np.ndarray  # responsiveness logit
    budget: np.ndarray  # hidden shocks
    users: np.ndarray  # provisioned users at the start of the next month
    seats: np.ndarray  # seats in force at the start of the next month


@dataclass(frozen=True)
class Month:
    """What one month of the dynamics produced (beside the new State)."""

    active_share: np.ndarray
    users: np.ndarray  # at month start
    seats: np.ndarray  # at month start
    joins: np.ndarray
    leaves: np.ndarray
    seats_end: np.ndarray


def _step(tr: Traits, s: State, alive: np.ndarray, tenure: np.ndarray, rng: np.random.Generator,
          budget: bool = True) -> tuple[State, Month]:
    """One month of the latent dynamics for every row. The order of the random draws is fixed (the
    realised path and the continuations of the ground truth share this code). With budget=False
    the hidden shocks are not drawn (the ground truth integrates them exactly)."""
    n = len(alive)
    sev_before = s.severity
    # Champion leaves (more often after last month's incident) and is sometimes replaced.
    champion_leaves = rng.random(n) < 0.022 + 0.03 * (sev_before > 0)
    ch = np.where(alive, np.where(s.champion, ~champion_leaves, rng.random(n) < 0.08), s.champion)
    sev = np.where(rng.random(n) < OUTAGE_RATE, 0.5 + rng.exponential(1.0, n), 0.0) * alive
    u_target = tr.mu_usage - 1.6 * ~ch - 0.3 * sev
    u = np.where(alive, 0.7 * s.usage + 0.3 * u_target + rng.normal(0, 0.12, n), s.usage)
    a = _sigmoid(tr.share_base + 1.8 * u)
    pl = np.where(alive, 0.85 * s.pay + 0.15 * tr.mu_pay + rng.normal(0, 0.3, n)
                  + 2.5 * (rng.random(n) < 0.015), s.pay)
    se_target = tr.mu_sentiment + 0.9 * u - 1.3 * sev - 0.6 * ~ch
    se = np.where(alive, 0.75 * s.sentiment + 0.25 * se_target + rng.normal(0, 0.3, n), s.sentiment)
    rl = np.where(alive, 0.6 * s.respond + 0.4 * (tr.mu_respond + 1.0 * u + 0.8 * ch) + rng.normal(0, 0.25, n),
                  s.respond)
    bu = np.where(alive, 0.6 * s.budget + 2.6 * (rng.random(n) < 0.006), s.budget) if budget else s.budget

    # Users: growth when usage is healthy, attrition when it decays; young accounts keep onboarding.
    nu, st = s.users, s.seats
    young = (tenure < 3) & tr.new
    join = rng.poisson(nu * (0.016 + 0.025 * np.clip(u, 0, 1)) + young * 0.25 * tr.target)
    leavers = rng.binomial(nu, 0.012 + 0.05 * _sigmoid(-3.0 * (u + 0.8)))
    after = nu + join - leavers
    # Seats: expand when users outgrow them; contract towards real use (monthly: any month;
    # annual: only at renewal), removing surplus users.
    renewal = (tenure > 0) & (tenure % 12 == 0)
    util = a * after * tr.onb_factor / np.maximum(st, 1)
    # Fading accounts right-size first: contraction is a lead signal of churn.
    cut_p = np.where(tr.annual, 0.3, 0.01) + 0.6 * _sigmoid(-6.0 * (u + 0.8))
    may_cut = (rng.random(n) < cut_p) & np.where(tr.annual, renewal, tenure > 0)
    cut = may_cut & (util < 0.6)
    cut_to = np.maximum(1, np.ceil(a * after * tr.onb_factor * 1.2)).astype(np.int64)
    new_st = np.where(cut, np.minimum(st, cut_to), st)
    forced = np.maximum(after - new_st, 0) * cut
    after = after - forced
    upsell = (u > 0.3) & (rng.random(n) < 0.01)
    grow_to = np.ceil(after * rng.uniform(1.05, 1.3, n)).astype(np.int64)
    grow = ((after > new_st) | upsell) & (tenure > 0) & ~cut
    new_st = np.where(grow, np.maximum(new_st, grow_to), new_st)
    seats_end = np.where(alive, new_st, st)
    month = Month(a, nu, st, np.where(alive, join, 0), np.where(alive, leavers + forced, 0), seats_end)
    return State(ch, sev, u, pl, se, rl, bu, np.where(alive, after, nu), seats_end), month


def simulate(base: Base, months: int, rng: np.random.Generator) -> Latent:
    """Run the latent state for every account over burn-in, the data range and AFTER months."""
    n = len(base.segment)
    width = BURN_IN + months + AFTER
    seg, created = base.segment, base.created_month
    tenure = (np.arange(width) - BURN_IN)[None, :] - created[:, None]
    exists = tenure >= 0

    # Account traits.
    mu_usage = rng.normal(0.0, 0.3, n)
    onboarding = np.where(rng.random(n) < 0.25, rng.beta(2.0, 4.0, n), rng.beta(8.0, 2.0, n))
    share_base = rng.normal(2.0, 0.5, n) + 1.2 * (onboarding - 0.7)
    target = np.maximum(1, np.round(np.exp(rng.normal(np.log([4.0, 14.0, 50.0])[seg], 0.55))))
    overprov = np.clip(np.exp(rng.normal(0.0, 0.3, n)), 1.0, 4.0)
    mu_sentiment = rng.normal(7.8, 1.0, n)
    mu_respond = rng.normal(0.2, 0.7, n)
    mu_pay = rng.normal(-2.4, 0.9, n)
    frailty = rng.normal(0.0, 0.45, n)
    onb_factor = onboarding + 0.6 * (1 - onboarding)  # non-onboarded users are active less

    new = created >= -BURN_IN  # created inside the simulated window: starts small with a champion
    traits = Traits(base.annual, new, mu_usage, onboarding, share_base, target, mu_sentiment, mu_respond,
                    mu_pay, frailty, onb_factor)
    init_users = np.where(new, np.maximum(1, np.ceil(0.5 * target)), target).astype(np.int64)
    init_seats = np.round(target * overprov).astype(np.int64)

    shape = (n, width)
    champion = np.zeros(shape, bool)
    usage = np.zeros(shape, np.float32)
    share = np.zeros(shape, np.float32)
    users = np.zeros(shape, np.int32)
    joins = np.zeros(shape, np.int32)
    leaves = np.zeros(shape, np.int32)
    seats = np.zeros(shape, np.int32)
    seats_end = np.zeros(shape, np.int32)
    outage = np.zeros(shape, np.float32)
    # The continuous state at full precision, for the continuations of the ground truth.
    carried = {name: np.zeros(shape) for name in ("usage", "pay", "sentiment", "respond", "budget")}

    ch = np.where(new, True, rng.random(n) < 0.8)
    state = State(ch, np.zeros(n), mu_usage - 1.0 * ~ch, mu_pay.copy(), mu_sentiment.copy(), mu_respond.copy(),
                  np.zeros(n), init_users.copy(), init_seats.copy())
    for j in range(width):
        state, month = _step(traits, state, exists[:, j], tenure[:, j], rng)
        champion[:, j] = state.champion
        usage[:, j] = state.usage
        share[:, j] = month.active_share
        users[:, j] = month.users
        seats[:, j] = month.seats
        joins[:, j] = month.joins
        leaves[:, j] = month.leaves
        seats_end[:, j] = month.seats_end
        outage[:, j] = state.severity
        for name, values in carried.items():
            values[:, j] = getattr(state, name)

    sentiment = carried["sentiment"].astype(np.float32)
    late_pay = _sigmoid(carried["pay"].astype(np.float32)).astype(np.float32)
    responsiveness = _sigmoid(carried["respond"].astype(np.float32)).astype(np.float32)
    utilisation, escalation_rate = _derived(share, users, seats, outage, onb_factor)
    hidden = frailty[:, None] + carried["budget"].astype(np.float32)  # never written anywhere
    terms = _family_terms(base, tenure, usage, utilisation, onboarding, escalation_rate, late_pay,
                          sentiment, responsiveness)
    logit = INTERCEPT + hidden + sum(terms.values())
    # Churn needs a month of tenure: an account cannot leave in the month it signed.
    hazard = np.where(tenure > 0, _sigmoid(logit), 0.0).astype(np.float32)
    return Latent(months, onboarding.astype(np.float32), champion, usage, share, users, joins, leaves,
                  seats, seats_end, outage, escalation_rate, late_pay, sentiment, responsiveness, terms, hazard,
                  traits, carried)


def _derived(share, users, seats, outage, onb_factor) -> tuple[np.ndarray, np.ndarray]:
    """Expected utilisation (active / seats) and the escalation rate, from the monthly state."""
    utilisation = share * users * onb_factor[:, None] / np.maximum(seats, 1)
    escalation_rate = (0.008 * np.sqrt(users) + 1.5 * outage).astype(np.float32)
    return utilisation, escalation_rate


def _lag(x: np.ndarray, k: int) -> np.ndarray:
    """x one column per month shifted right by k (the first column repeats at the left edge)."""
    return np.concatenate([np.repeat(x[:, :1], k, axis=1), x[:, :-k]], axis=1)


def _family_terms(base: Base, tenure, usage, utilisation, onboarding, escalation_rate, late_pay,
                  sentiment, responsiveness) -> dict[str, np.ndarray]:
    """The log-odds term of every driver family; each reads the state of the months before."""
    usage_1 = _lag(usage, 1)
    decline = np.maximum(_lag(usage, 4) - usage_1, 0)  # fall of L over the last three months
    usage_term = 1.0 * np.tanh(decline / 0.6) + 0.5 * np.clip(-usage_1 - 0.5, 0, 1.5)

    util_1 = _lag(utilisation, 1)
    util_term = 1.0 * _ramp(util_1, 0.4, 0.7) + 0.8 * _ramp(util_1, 0.15, 0.4)

    onboarding_term = (1.2 * _ramp(onboarding, 0.3, 0.6))[:, None] * np.where(tenure <= 12, 1.0, 0.4)

    recent_esc = _lag(escalation_rate, 1) + _lag(escalation_rate, 2) + _lag(escalation_rate, 3)
    esc = 1 - np.exp(-recent_esc / 1.0)  # saturates: the third escalation adds little
    interaction = INTERACTION * esc * ~base.annual[:, None]

    pay_term = 1.8 * _ramp(_lag(late_pay, 1), 0.5, 0.12)  # from 12% of invoices late to 50%
    nps_term = 0.35 * np.clip(7.0 - _lag(sentiment, 1), 0, 4)  # only detractor territory counts
    engage_term = 1.3 * _ramp(_lag(responsiveness, 1), 0.1, 0.3)

    renewal = (tenure > 0) & (tenure % 12 == 0)
    contract = (SEGMENT_OFFSET[base.segment] + PLAN_OFFSET[base.plan])[:, None] \
        + np.select([tenure < 6, tenure < 12, tenure >= 36], [0.5, 0.2, -0.3], 0.0) \
        + np.where(base.annual[:, None], np.where(renewal, RENEWAL_OFFSET, MIDTERM_OFFSET), 0.0)

    f32 = np.float32
    return {
        "usage_decline": usage_term.astype(f32),
        "low_licence_utilisation": util_term.astype(f32),
        "poor_onboarding": onboarding_term.astype(f32),
        "support_escalations": (1.0 * esc + 0.5 * interaction).astype(f32),
        "late_payments": pay_term.astype(f32),
        "low_nps": nps_term.astype(f32),
        "disengagement": engage_term.astype(f32),
        "contract_plan": (contract + 0.5 * interaction).astype(f32),
    }


def draw_churn(latent: Latent, rng: np.random.Generator) -> np.ndarray:
    """Churn month per account (relative to start; -1 = retained through the data end)."""
    h = latent.hazard[:, BURN_IN:BURN_IN + latent.months]
    hit = rng.random(h.shape, dtype=np.float32) < h
    return np.where(hit.any(axis=1), hit.argmax(axis=1), -1).astype(np.int32)


@dataclass(frozen=True)
class GroundTruth:
    """Rows of every (account, month start) at which the account is active."""

    account: np.ndarray  # account index
    month: np.ndarray  # as_of month relative to start
    p_churn_90d: np.ndarray
    contributions: np.ndarray  # (rows, len(DRIVER_FAMILIES)) centred log-odds


CONTINUATIONS = 64  # simulated continuations of the two months after each as_of
CHUNK_ROWS = 1 << 18  # replicated rows per continuation batch (bounds the memory)
BUDGET_SHOCK = 0.006  # monthly chance of a hidden shock (budget cut, acquisition), size 2.6


def ground_truth(latent: Latent, base: Base, churn_month: np.ndarray, rng: np.random.Generator,
                 continuations: int = CONTINUATIONS) -> GroundTruth:
    """p_churn_90d and the family contributions for every active (account, as_of).

    Active at as_of = created before it and not churned before it. The truth conditions on the
    whole latent state up to as_of (the months before it, hidden frailty and shocks included) and
    integrates over everything after it: the two months of dynamics that follow as_of are
    simulated `continuations` times from the state at as_of (a stream of their own, so the
    realised tables never depend on it), and the hidden shocks of the three window months are
    summed over exactly. With h_0..h_2 the hazards of the window months,

        p = E[1 - (1 - h_0)(1 - h_1)(1 - h_2) | state up to as_of].

    The contribution of a family is the expectation of its log-odds term in the month of churn,
    given churn inside the window: E[sum_k w_k T_k] / p with w_k = P(churn in window month k),
    centred on its mean over all rows.
    """
    m = latent.months
    months = np.arange(m)
    active = (base.created_month[:, None] < months) & ((churn_month[:, None] < 0) | (churn_month[:, None] >= months))
    acc, mon = np.nonzero(active.T)  # (as_of, account) order
    acc, mon = mon.astype(np.int64), acc.astype(np.int64)
    p = np.empty(len(acc))
    contributions = np.empty((len(acc), len(DRIVER_FAMILIES)))
    k = continuations
    per_chunk = max(1, CHUNK_ROWS // k)
    for month in range(m):
        rows = np.flatnonzero(mon == month)
        for lo in range(0, len(rows), per_chunk):
            part = rows[lo:lo + per_chunk]
            p[part], contributions[part] = _window_expectation(latent, base, acc[part], month, k, rng)
    contributions -= contributions.mean(axis=0)
    order = np.lexsort((mon, acc))
    return GroundTruth(acc[order].astype(np.int32), mon[order].astype(np.int32), p[order], contributions[order])


def _window_expectation(latent: Latent, base: Base, acc: np.ndarray, month: int, k: int,
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """p_churn_90d and the uncentred contributions of accounts `acc`, all active at `month`."""
    j = month + BURN_IN
    rows = np.repeat(acc, k)
    n = len(rows)
    traits = latent.traits.take(rows)
    tenure = month - base.created_month[rows].astype(np.int64)
    carried = latent.carried
    state = State(latent.champion[rows, j - 1], latent.outage[rows, j - 1].astype(np.float64),
                  carried["usage"][rows, j - 1], carried["pay"][rows, j - 1], carried["sentiment"][rows, j - 1],
                  carried["respond"][rows, j - 1], carried["budget"][rows, j - 1],
                  latent.users[rows, j].astype(np.int64), latent.seats[rows, j].astype(np.int64))
    alive = np.ones(n, bool)
    s1, m1 = _step(traits, state, alive, tenure, rng, budget=False)
    s2, m2 = _step(traits, s1, alive, tenure + 1, rng, budget=False)

    # Columns j-4 .. j+2: four realised months, the two simulated ones, and a placeholder for the
    # third window month (its terms read only the months before it).
    def cols(realised, first, second):
        first = np.asarray(first, realised.dtype)
        second = np.asarray(second, realised.dtype)
        return np.column_stack([realised[rows, j - 4:j], first, second, second])

    f32 = np.float32
    usage = cols(latent.usage, s1.usage, s2.usage)
    share = cols(latent.active_share, m1.active_share, m2.active_share)
    users = cols(latent.users, m1.users, m2.users)
    seats = cols(latent.seats, m1.seats, m2.seats)
    outage = cols(latent.outage, s1.severity, s2.severity)
    sentiment = cols(latent.sentiment, s1.sentiment, s2.sentiment)
    pay = np.column_stack([carried["pay"][rows, j - 4:j], s1.pay, s2.pay, s2.pay]).astype(f32)
    respond = np.column_stack([carried["respond"][rows, j - 4:j], s1.respond, s2.respond, s2.respond]).astype(f32)
    utilisation, escalation_rate = _derived(share, users, seats, outage, traits.onb_factor)
    sub = Base(base.segment[rows], base.plan[rows], base.annual[rows], base.created_month[rows])
    window_tenure = tenure[:, None] + np.arange(-4, 3)
    terms = _family_terms(sub, window_tenure, usage, utilisation, traits.onboarding,
                          escalation_rate, _sigmoid(pay).astype(f32), sentiment, _sigmoid(respond).astype(f32))
    window = np.stack([terms[f][:, 4:].astype(np.float64) for f in DRIVER_FAMILIES])  # (family, n, 3)
    eta = INTERCEPT + traits.frailty[:, None] + window.sum(axis=0)

    # Hidden shocks of the three window months, summed over their 8 combinations exactly.
    shock = (np.arange(8)[:, None] >> np.arange(3)) & 1  # (combination, month)
    weight = np.prod(np.where(shock == 1, BUDGET_SHOCK, 1 - BUDGET_SHOCK), axis=1)
    b = np.empty((n, 8, 3))
    prev = carried["budget"][rows, j - 1][:, None]
    for t in range(3):
        prev = 0.6 * prev + 2.6 * shock[None, :, t]
        b[:, :, t] = prev
    h = _sigmoid(eta[:, None, :] + b.astype(f32).astype(np.float64))
    survive = np.cumprod(1 - h, axis=2)
    w = h * np.concatenate([np.ones((n, 8, 1)), survive[:, :, :2]], axis=2)  # P(churn in month t)
    w = np.einsum("ncm,c->nm", w, weight)  # expectation over the hidden shocks
    p = w.sum(axis=1).reshape(-1, k).mean(axis=1)
    contrib = np.einsum("nm,fnm->nf", w, window).reshape(-1, k, len(DRIVER_FAMILIES)).mean(axis=1)
    return p, contrib / p[:, None]
