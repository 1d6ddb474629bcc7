"""The hidden truth of the demo base: a monthly state per account and the churn hazard on it.

Everything observable (usage, tickets, invoices, surveys, engagements, seats) is drawn from this
state, and churn is drawn month by month as Bernoulli(hazard). Part of the state is realised
experience that the tables show one to one (escalated tickets, late invoices, the users engaged in
a month, the newcomers who got going, the outreach answered); the rest is latent (usage level,
sentiment, responsiveness, payment stress, the champion, hidden frailty and shocks).

The ground truth (`ground_truth`) is the probability of churn within 90 days given the whole state
up to as_of, integrated over what happens after it. The model is documented term by term in
docs/DEMO_DATA.md; keep the two in step.
"""

from __future__ import annotations

from collections.abc import Callable
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
AFTER = 2  # months simulated after the data end (the calendar of the last as_of dates' windows)

OUTAGE_RATE = 0.035  # chance per month that an incident hits an account
BUDGET_SHOCK = 0.006  # chance per month of a hidden shock (budget cut, acquisition)
BUDGET_SIZE = 2.6  # its log-odds jump; it decays by BUDGET_DECAY a month
BUDGET_DECAY = 0.6
FRAILTY_SD = 0.1
ENGAGEMENT_MIXING = 0.3  # how fast the number of engaged users moves towards its expectation
NON_ONBOARDED_ACTIVITY = 0.6  # relative chance that a user who never got going is engaged

# Hazard: logit h = INTERCEPT + sum of the family terms (_family_terms) + hidden.
INTERCEPT = -6.55
SEGMENT_OFFSET = np.array([0.45, 0.0, -0.5], dtype=np.float32)
PLAN_OFFSET = np.array([0.2, 0.0, -0.25], dtype=np.float32)
INDUSTRIES = ("Software", "Financial services", "Healthcare", "Retail", "Manufacturing", "Education",
              "Media", "Professional services", "Logistics", "Non-profit")
# Budgets and switching habits differ by industry (one entry per INDUSTRIES).
INDUSTRY_OFFSET = np.array([0.0, -0.35, -0.25, 0.4, -0.1, 0.2, 0.45, 0.1, 0.0, 0.3], dtype=np.float32)
RENEWAL_OFFSET = 2.2  # annual terms: the renewal month concentrates a year of churn risk
MIDTERM_OFFSET = -2.3  # annual terms between renewals: only closures and breaches
INTERACTION = 1.2  # extra weight of escalations for monthly terms (they can leave any month)
# Outreach (CSM and marketing touches): per segment, the touches per month and the channel mix
# (email, meeting, training); the chance of a response is the responsiveness times the channel factor.
OUTREACH_PER_MONTH = np.array([2.0, 3.0, 4.0])
CHANNEL_MIX = np.array([[0.85, 0.05, 0.1], [0.65, 0.2, 0.15], [0.5, 0.3, 0.2]])
CHANNEL_RESPONSE = np.array([0.7, 1.15, 0.9])
PAYMENT_TERMS = np.array([14, 30, 45])  # days from invoice to due date, per segment
HISTORY = 6  # months of history the hazard reads (the invoices of the last 180 days)


@dataclass(frozen=True)
class Base:
    """The static commercial facts the latent model needs, one entry per account."""

    segment: np.ndarray  # int8 index into SEGMENTS
    plan: np.ndarray  # int8 index into PLANS
    annual: np.ndarray  # bool: annual term (else monthly)
    created_month: np.ndarray  # int32: month of creation relative to `start` (negative: installed base)
    industry: np.ndarray  # int8 index into INDUSTRIES
    day: np.ndarray  # int: day of month of creation = billing anniversary (invoices, renewals, churn)

    def take(self, rows: np.ndarray) -> Base:
        return Base(*(getattr(self, f.name)[rows] for f in fields(self)))


@dataclass(frozen=True)
class Traits:
    """Per-account constants of the dynamics (indexable, so continuations can replicate rows)."""

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
    onb_factor: np.ndarray  # relative engagement of the users (non-onboarded users engage 0.6 times as often)
    outreach: np.ndarray  # (N, 3) expected touches per month by channel

    def take(self, rows: np.ndarray) -> Traits:
        return Traits(*(getattr(self, f.name)[rows] for f in fields(self)))


@dataclass
class State:
    """What a month hands to the next (float64 where the dynamics are continuous)."""

    champion: np.ndarray  # bool
    severity: np.ndarray  # this month's incident severity (0 = none)
    usage: np.ndarray
    pay: np.ndarray  # payment-stress logit
    sentiment: np.ndarray
    respond: np.ndarray  # responsiveness logit
    budget: np.ndarray  # hidden shocks
    users: np.ndarray  # provisioned users at the start of the next month
    seats: np.ndarray  # seats in force at the start of the next month
    engaged: np.ndarray  # users engaged this month (-1: no month yet)


@dataclass(frozen=True)
class Month:
    """What one month of the dynamics produced, beside the State it hands on."""

    active_share: np.ndarray
    users: np.ndarray  # at month start
    seats: np.ndarray  # at month start
    joins: np.ndarray
    leaves: np.ndarray
    seats_end: np.ndarray  # after this month's change (at the billing anniversary)
    escalations: np.ndarray  # realised escalated tickets
    late: np.ndarray  # bool: this month's invoice (if one is issued) is paid late
    engaged: np.ndarray  # realised users (of those at month start) who use the product this month
    newcomers: np.ndarray  # users who joined this month (at creation: the users who signed up with it)
    activated: np.ndarray  # of them, those who get going in their first 30 days
    touches: np.ndarray  # (n, 3) outreach touches by channel
    responses: np.ndarray  # (n, 3) of them, those the customer responded to


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
    escalations: np.ndarray  # int: escalated tickets opened in the month
    late_pay: np.ndarray  # probability that an invoice of the month is paid late
    late: np.ndarray  # bool: the invoice of the month, if any, is paid late
    engaged: np.ndarray  # int: users (of those at month start) engaged in the month
    newcomers: np.ndarray  # int: users who joined in the month (at creation: those who signed up with it)
    activated: np.ndarray  # int: of them, those who got going within 30 days (onboarded)
    touches: np.ndarray  # int (N, months, 3): outreach touches by channel
    responses: np.ndarray  # int (N, months, 3): touches the customer responded to
    sentiment: np.ndarray  # expected NPS answer (0-10 scale)
    terms: dict[str, np.ndarray]  # family -> log-odds term of the month's hazard
    hazard: np.ndarray  # monthly churn probability (0 where churn is impossible)
    traits: Traits  # the account constants of the dynamics
    carried: dict[str, np.ndarray]  # float64 state at each month end: usage, pay, sentiment, respond, budget
    month_starts: np.ndarray  # day number (days since 1970-01-01) of the first day of each column's month


def _ramp(x: np.ndarray, full: float, none: float) -> np.ndarray:
    """1 at or beyond `full`, 0 at or before `none`, linear between: a threshold with saturation."""
    return np.clip((none - x) / (none - full), 0.0, 1.0)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _step(tr: Traits, s: State, alive: np.ndarray, tenure: np.ndarray, rng: np.random.Generator,
          budget: bool = True) -> tuple[State, Month]:
    """One month of the dynamics for every row. The realised path and the continuations of the
    ground truth share this code; the order of the draws is fixed. With budget=False the hidden
    shocks are not drawn (the ground truth sums over them exactly)."""
    n = len(alive)
    # Champion leaves (more often after last month's incident) and is sometimes replaced.
    champion_leaves = rng.random(n) < 0.022 + 0.03 * (s.severity > 0)
    ch = np.where(alive, np.where(s.champion, ~champion_leaves, rng.random(n) < 0.08), s.champion)
    sev = np.where(rng.random(n) < OUTAGE_RATE, 0.5 + rng.exponential(1.0, n), 0.0) * alive
    u_target = tr.mu_usage - 1.6 * ~ch - 0.3 * sev
    u = np.where(alive, 0.7 * s.usage + 0.3 * u_target + rng.normal(0, 0.08, n), s.usage)
    a = _sigmoid(tr.share_base + 0.8 * u)
    pl = np.where(alive, 0.85 * s.pay + 0.15 * tr.mu_pay + rng.normal(0, 0.3, n)
                  + 2.5 * (rng.random(n) < 0.015), s.pay)
    se_target = tr.mu_sentiment + 0.9 * u - 1.3 * sev - 0.6 * ~ch
    se = np.where(alive, 0.75 * s.sentiment + 0.25 * se_target + rng.normal(0, 0.3, n), s.sentiment)
    rl = np.where(alive, 0.6 * s.respond + 0.4 * (tr.mu_respond + 0.5 * u + 0.8 * ch) + rng.normal(0, 0.25, n),
                  s.respond)
    if budget:
        bu = np.where(alive, BUDGET_DECAY * s.budget + BUDGET_SIZE * (rng.random(n) < BUDGET_SHOCK), s.budget)
    else:
        bu = s.budget

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

    # Realised experience, shown one to one by the tables: escalated tickets, whether the month's
    # invoice is paid late, and how many of the users at month start use the product.
    escalations = rng.poisson(0.008 * np.sqrt(nu) + 1.5 * sev) * alive
    late = (rng.random(n) < _sigmoid(pl)) & alive
    # Engagement is sticky: an engaged user stays engaged with probability 1 - k (1 - share), any
    # other user becomes engaged with probability k share (k = ENGAGEMENT_MIXING), so the number
    # engaged drifts towards share x users over a few months. A new account starts afresh.
    share = a * tr.onb_factor
    before = np.minimum(np.maximum(s.engaged, 0), nu)
    stay = rng.binomial(before, 1 - ENGAGEMENT_MIXING * (1 - share))
    enter = rng.binomial(nu - before, ENGAGEMENT_MIXING * share)
    fresh = rng.binomial(nu, share)
    engaged = np.where((tenure == 0) | (s.engaged < 0), fresh, stay + enter) * alive
    # The users who joined this month (at creation: those who signed up with the account), of whom
    # Binomial(q) get going; outreach touches by channel and the customer's responses.
    newcomers = (join + ((tenure == 0) & tr.new) * nu) * alive
    activated = rng.binomial(newcomers, tr.onboarding)
    touches = rng.poisson(tr.outreach) * alive[:, None]
    responses = rng.binomial(touches, np.minimum(_sigmoid(rl)[:, None] * CHANNEL_RESPONSE, 0.98))
    month = Month(a, nu, st, np.where(alive, join, 0), np.where(alive, leavers + forced, 0), seats_end,
                  escalations, late, engaged, newcomers, activated, touches, responses)
    return State(ch, sev, u, pl, se, rl, bu, np.where(alive, after, nu), seats_end,
                 np.where(alive, engaged, s.engaged)), month


MONTH_FIELDS = ("active_share", "users", "seats", "joins", "leaves", "seats_end", "escalations", "late", "engaged",
                "newcomers", "activated")
MONTH_DTYPES = (np.float32, np.int32, np.int32, np.int32, np.int32, np.int32, np.int32, bool, np.int32, np.int32,
                np.int32)
CARRIED = ("usage", "pay", "sentiment", "respond", "budget")


def simulate(base: Base, months: int, month_starts: np.ndarray, rng: np.random.Generator) -> Latent:
    """Run the latent state for every account over burn-in, the data range and AFTER months;
    month_starts = the day numbers of the first days of those months."""
    n = len(base.segment)
    width = BURN_IN + months + AFTER
    month_starts = np.asarray(month_starts, np.int64)
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
    frailty = rng.normal(0.0, FRAILTY_SD, n)
    onb_factor = onboarding + NON_ONBOARDED_ACTIVITY * (1 - onboarding)

    new = created >= -BURN_IN  # created inside the simulated window: starts small with a champion
    outreach = OUTREACH_PER_MONTH[seg][:, None] * CHANNEL_MIX[seg]
    traits = Traits(base.annual, new, mu_usage, onboarding, share_base, target, mu_sentiment, mu_respond,
                    mu_pay, frailty, onb_factor, outreach)
    init_users = np.where(new, np.maximum(1, np.ceil(0.5 * target)), target).astype(np.int64)
    init_seats = np.round(target * overprov).astype(np.int64)

    shape = (n, width)
    champion = np.zeros(shape, bool)
    outage = np.zeros(shape, np.float32)
    usage = np.zeros(shape, np.float32)
    monthly = {name: np.zeros(shape, dtype) for name, dtype in zip(MONTH_FIELDS, MONTH_DTYPES)}
    touches = np.zeros((n, width, 3), np.int32)
    responses = np.zeros((n, width, 3), np.int32)
    # The continuous state at full precision, for the continuations of the ground truth.
    carried = {name: np.zeros(shape) for name in CARRIED}

    ch = np.where(new, True, rng.random(n) < 0.8)
    state = State(ch, np.zeros(n), mu_usage - 1.0 * ~ch, mu_pay.copy(), mu_sentiment.copy(), mu_respond.copy(),
                  np.zeros(n), init_users.copy(), init_seats.copy(), np.full(n, -1))
    for j in range(width):
        state, month = _step(traits, state, exists[:, j], tenure[:, j], rng)
        champion[:, j] = state.champion
        outage[:, j] = state.severity
        usage[:, j] = state.usage
        for name, values in monthly.items():
            values[:, j] = getattr(month, name)
        touches[:, j] = month.touches
        responses[:, j] = month.responses
        for name, values in carried.items():
            values[:, j] = getattr(state, name)

    sentiment = carried["sentiment"].astype(np.float32)
    late_pay = _sigmoid(carried["pay"].astype(np.float32)).astype(np.float32)
    terms = _family_terms(base, tenure, month_starts[None, :], usage, monthly["engaged"], monthly["seats_end"],
                          monthly["newcomers"], monthly["activated"], monthly["escalations"], monthly["late"],
                          sentiment, touches.sum(axis=2), responses.sum(axis=2))
    hidden = frailty[:, None] + carried["budget"]  # never written anywhere: budget cuts, acquisitions, ...
    logit = INTERCEPT + hidden + sum(terms.values())
    # Churn needs a month of tenure: an account cannot leave in the month it signed.
    hazard = np.where(tenure > 0, _sigmoid(logit), 0.0).astype(np.float32)
    return Latent(months, onboarding.astype(np.float32), champion, usage, monthly["active_share"], monthly["users"],
                  monthly["joins"], monthly["leaves"], monthly["seats"], monthly["seats_end"], outage,
                  monthly["escalations"], late_pay, monthly["late"], monthly["engaged"], monthly["newcomers"],
                  monthly["activated"], touches, responses, sentiment, terms, hazard, traits, carried, month_starts)


def _lag(x: np.ndarray, k: int) -> np.ndarray:
    """x one column per month shifted right by k (the first column repeats at the left edge)."""
    return np.concatenate([np.repeat(x[:, :1], k, axis=1), x[:, :-k]], axis=1)


def _family_terms(base: Base, tenure, starts, usage, engaged, seats_end, newcomers, activated, escalations, late,
                  sentiment, touches, responses, at: int | None = None) -> dict[str, np.ndarray]:
    """The log-odds term of every driver family; each reads the state of the months before.

    Inputs are (account, month) arrays and the terms come out for every month; or, with `at`,
    lists of per-month columns (arrays that broadcast, e.g. (accounts, 1) and (accounts, K))
    and the terms of month `at` only (which must have HISTORY months before it)."""
    if at is None:
        lag = _lag
    else:
        def lag(x: list[np.ndarray], k: int) -> np.ndarray:
            return x[at - k]
        tenure = tenure[at]
    start = starts if at is None else starts[at]  # day number of the month's first day
    # Usage: the level last month, from 0.2 below a typical account's down to 1.2 below it (where a
    # champion-less account settles); a decline shows as the level falling through the ramp.
    usage_term = 1.8 * _ramp(lag(usage, 1), -1.2, -0.2)

    util_1 = lag(engaged, 1) / np.maximum(lag(seats_end, 1), 1)  # users engaged last month / seats at its end
    util_term = 1.0 * _ramp(util_1, 0.4, 0.7) + 0.8 * _ramp(util_1, 0.15, 0.4)

    # Onboarding: of the users who joined 2..4 months back (their first 30 days are over), the share
    # who got going; it weighs in the account's first year.
    joined = sum(lag(newcomers, k) for k in (2, 3, 4))
    active_share = sum(lag(activated, k) for k in (2, 3, 4)) / np.maximum(joined, 1)
    onboarding_term = 1.2 * _ramp(active_share, 0.3, 0.6) * ((joined > 0) & (tenure <= 12))

    recent_esc = lag(escalations, 1) + lag(escalations, 2) + lag(escalations, 3)
    esc = 1 - np.exp(-recent_esc / 1.0)  # saturates: the third escalation adds little
    interaction = INTERACTION * esc * ~base.annual[:, None]

    # Late payments: the invoices of the last 180 days that are due by now and were paid late (or
    # not yet); monthly terms are invoiced every month, annual ones every third, on the anniversary.
    late_n = 0
    for k in range(1, HISTORY + 1):
        issued = lag(starts, k) + base.day[:, None] - 1
        billed = (tenure - k >= 0) & (~base.annual[:, None] | ((tenure - k) % 3 == 0))
        counted = billed & (issued + PAYMENT_TERMS[base.segment][:, None] < start) & (issued >= start - 180)
        late_n = late_n + (lag(late, k) & counted)
    pay_term = 1.8 * _ramp(late_n, 3, 1)
    nps_term = 0.35 * np.clip(7.0 - lag(sentiment, 1), 0, 4)  # only detractor territory counts
    # Disengagement: the share of the last three months' outreach that got a response.
    touched = sum(lag(touches, k) for k in (1, 2, 3))
    response_share = sum(lag(responses, k) for k in (1, 2, 3)) / np.maximum(touched, 1)
    engage_term = 1.3 * _ramp(response_share, 0.1, 0.3) * (touched > 0)

    renewal = (tenure > 0) & (tenure % 12 == 0)
    contract = (SEGMENT_OFFSET[base.segment] + PLAN_OFFSET[base.plan] + INDUSTRY_OFFSET[base.industry])[:, None] \
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
CHUNK_ROWS = 1 << 17  # replicated rows per batch of continuations (bounds the memory)


def ground_truth(latent: Latent, base: Base, churn_month: np.ndarray, rng: np.random.Generator,
                 continuations: int = CONTINUATIONS,
                 progress: Callable[[int, int], None] | None = None) -> GroundTruth:
    """p_churn_90d and the family contributions for every active (account, as_of).

    Active at as_of = created before it and not churned before it. The truth conditions on the
    whole state up to as_of (the months before it, hidden frailty and shocks included) and
    integrates over everything after it: the two months of dynamics that follow as_of are
    simulated `continuations` times from the state at as_of (a random stream of their own, so
    the tables never depend on it), and the hidden shocks of the three window months are summed
    over exactly. With h_0..h_2 the hazards of the window months,

        p = E[1 - (1 - h_0)(1 - h_1)(1 - h_2) | state up to as_of].

    The contribution of a family is the expectation of its log-odds term in the month of churn,
    given churn inside the window: E[sum_t w_t T_t] / p with w_t = P(churn in window month t),
    centred on its mean over all rows. `progress(done, total)` is called once per as_of month.
    """
    m = latent.months
    months = np.arange(m)
    active = (base.created_month[:, None] < months) & ((churn_month[:, None] < 0) | (churn_month[:, None] >= months))
    mon, acc = (x.astype(np.int64) for x in np.nonzero(active.T))  # as_of-major order
    p = np.empty(len(acc))
    contributions = np.empty((len(acc), len(DRIVER_FAMILIES)))
    per_chunk = max(1, CHUNK_ROWS // continuations)
    bounds = np.searchsorted(mon, np.arange(m + 1))
    for month in range(m):
        for lo in range(bounds[month], bounds[month + 1], per_chunk):
            part = slice(lo, min(lo + per_chunk, bounds[month + 1]))
            p[part], contributions[part] = _window(latent, base, acc[part], month, continuations, rng)
        if progress:
            progress(month + 1, m)
    contributions -= contributions.mean(axis=0)
    order = np.lexsort((mon, acc))  # account-major, like every other table
    return GroundTruth(acc[order].astype(np.int32), mon[order].astype(np.int32), p[order], contributions[order])


def _window(latent: Latent, base: Base, acc: np.ndarray, month: int, k: int,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """p_churn_90d and the uncentred contributions of accounts `acc`, all active at `month`.

    Arrays are (account, continuation); what the history fixes is (account, 1)."""
    j = month + BURN_IN
    n_acc = len(acc)
    rows = np.repeat(acc, k)
    traits = latent.traits.take(rows)
    carried = latent.carried
    state = State(latent.champion[rows, j - 1], latent.outage[rows, j - 1].astype(np.float64),
                  *(carried[name][rows, j - 1] for name in CARRIED),
                  latent.users[rows, j].astype(np.int64), latent.seats[rows, j].astype(np.int64),
                  latent.engaged[rows, j - 1].astype(np.int64))
    alive = np.ones(len(rows), bool)
    tenure = month - base.created_month[rows].astype(np.int64)
    s1, m1 = _step(traits, state, alive, tenure, rng, budget=False)
    s2, m2 = _step(traits, s1, alive, tenure + 1, rng, budget=False)

    # Per-month columns j-HISTORY .. j+1: the realised history, then the two simulated months.
    def cols(realised: np.ndarray, first, second) -> list[np.ndarray]:
        history = [realised[acc, c][:, None] for c in range(j - HISTORY, j)]
        return history + [np.asarray(x).astype(realised.dtype).reshape(n_acc, k) for x in (first, second)]

    def by_channel(realised: np.ndarray, first, second) -> list[np.ndarray]:  # summed over the channels
        history = [realised[acc, c].sum(axis=1)[:, None] for c in range(j - HISTORY, j)]
        return history + [x.sum(axis=1).reshape(n_acc, k) for x in (first, second)]

    inputs = (cols(latent.usage, s1.usage, s2.usage), cols(latent.engaged, m1.engaged, m2.engaged),
              cols(latent.seats_end, m1.seats_end, m2.seats_end), cols(latent.newcomers, m1.newcomers, m2.newcomers),
              cols(latent.activated, m1.activated, m2.activated),
              cols(latent.escalations, m1.escalations, m2.escalations), cols(latent.late, m1.late, m2.late),
              cols(latent.sentiment, s1.sentiment, s2.sentiment), by_channel(latent.touches, m1.touches, m2.touches),
              by_channel(latent.responses, m1.responses, m2.responses))
    tenure_cols = [(month + d - base.created_month[acc].astype(np.int64))[:, None] for d in range(-HISTORY, 3)]
    starts = list(latent.month_starts[j - HISTORY:j + 3])
    sub = base.take(acc)
    later = [_family_terms(sub, tenure_cols, starts, *inputs, at=HISTORY + t) for t in (1, 2)]
    # (family, window month) -> (account, 1 or k) log-odds terms; the first month's are the realised ones.
    terms = [[latent.terms[f][acc, j][:, None].astype(np.float64)] + [later[t][f].astype(np.float64) for t in (0, 1)]
             for f in DRIVER_FAMILIES]
    base_logit = INTERCEPT + latent.traits.frailty[acc][:, None]
    eta = [base_logit + sum(terms[i][t] for i in range(len(DRIVER_FAMILIES))) for t in range(3)]

    # Hidden shocks (X_0, X_1, X_2 in the three window months), summed over exactly. h_2 enters
    # linearly, so X_2 is averaged into it; (X_0, X_1) index the last two axes.
    q = np.array([1 - BUDGET_SHOCK, BUDGET_SHOCK])
    x = np.array([0.0, BUDGET_SIZE])
    b0 = BUDGET_DECAY * carried["budget"][acc, j - 1][:, None] + x  # (account, X_0)
    b1 = BUDGET_DECAY * b0[:, :, None] + x  # (account, X_0, X_1)
    b2 = BUDGET_DECAY * b1[:, :, :, None] + x  # (account, X_0, X_1, X_2)
    h0 = _sigmoid(eta[0][:, :, None, None] + b0[:, None, :, None])  # (account, 1, X_0, 1)
    h1 = _sigmoid(eta[1][:, :, None, None] + b1[:, None])  # (account, k, X_0, X_1)
    h2 = (_sigmoid(eta[2][:, :, None, None, None] + b2[:, None]) * q).sum(axis=-1)
    combo = q[:, None] * q[None, :]  # P(X_0, X_1)
    w = [np.broadcast_to(h0, h1.shape), (1 - h0) * h1, (1 - h0) * (1 - h1) * h2]  # P(churn in month t)
    w = [(wt * combo).sum(axis=(2, 3)) / k for wt in w]  # (account, k): over the shocks, 1/k per continuation
    p = sum(wt.sum(axis=1) for wt in w)
    contrib = np.column_stack([sum((w[t] * terms[i][t]).sum(axis=1) for t in range(3))
                               for i in range(len(DRIVER_FAMILIES))])
    return p, contrib / p[:, None]
