"""Product analytics and survey answers: what every user does, day by day, in one month.

Vectorised over users x days of a month and called once per month, so the generator can write
the event table month by month and never hold it in memory. All behaviour reads the latent
state of the account (churn_model.Latent): declining usage shows as fewer active users, fewer
and shorter sessions (logins that then idle) and narrower feature use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from healthscore.demo.churn_model import BURN_IN, NON_ONBOARDED_ACTIVITY, Latent

EVENT_TYPES = (
    "login", "session_minutes", "dashboards", "reports", "exports", "integrations", "api",
    "alerts", "collaboration", "mobile_app", "workflow_automation", "ai_assistant",
)
FEATURES = EVENT_TYPES[2:]
NEW_FEATURES = ("workflow_automation", "ai_assistant")
# Daily use probability of each feature at full breadth, and per-segment tilts (SMB use the
# mobile app, enterprises the API and integrations).
FEATURE_BASE = np.array([0.5, 0.3, 0.16, 0.11, 0.07, 0.2, 0.26, 0.13, 0.2, 0.25], np.float32)
SEGMENT_TILT = np.ones((3, len(FEATURES)), np.float32)
SEGMENT_TILT[0, [3, 4, 7]] = (0.7, 0.5, 1.4)
SEGMENT_TILT[2, [3, 4, 7]] = (1.5, 1.8, 0.7)
NEVER = np.iinfo(np.int64).max  # day number of "not deactivated"
ONBOARDING_DAYS = 30
ADOPTION_DAYS = 120  # a new feature reaches its full adoption this many days after release


@dataclass(frozen=True)
class Users:
    """Every user, ordered by user id; days are days since 1970-01-01."""

    account: np.ndarray  # int32 account index
    created: np.ndarray  # int64
    deactivated: np.ndarray  # int64, NEVER while active
    onboarded: np.ndarray  # bool: active within 30 days of joining
    propensity: np.ndarray  # float32: chance of using the product on a weekday when engaged
    since: np.ndarray  # int32: first month (relative to start) in which the user counts among those at month start


@dataclass(frozen=True)
class MonthActivity:
    """One month of events (rows ordered by date, user, event type) and survey answers."""

    event_user: np.ndarray
    event_day: np.ndarray
    event_type: np.ndarray  # int8 index into EVENT_TYPES
    quantity: np.ndarray
    survey_user: np.ndarray
    survey_day: np.ndarray
    survey_nps: np.ndarray


def _day_factor(days: np.ndarray) -> np.ndarray:
    """Relative activity of each day: weekends, the August and December dips, year-end holidays."""
    d = days.astype("datetime64[D]")
    month = d.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dom = (d - d.astype("datetime64[M]")).astype(np.int64) + 1
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    factor = np.where(weekday >= 5, 0.12, 1.0)
    factor = factor * np.select([month == 8, month == 12, month == 7], [0.75, 0.85, 0.92], 1.0)
    holiday = ((month == 12) & (dom >= 24)) | ((month == 1) & (dom == 1))
    return np.where(holiday, factor * 0.3, factor).astype(np.float32)


class ProductUsage:
    """Draws the daily usage of every user and the occasional NPS answer, month by month."""

    def __init__(self, latent: Latent, segment: np.ndarray, users: Users, release_days: np.ndarray,
                 rng: np.random.Generator):
        self.latent, self.users, self.rng = latent, users, rng
        self.release = release_days  # day number of each feature's release
        # How much each account uses each feature: segment taste times account-level noise.
        noise = rng.gamma(3.0, 1 / 3.0, (len(segment), len(FEATURES)))
        self.affinity = np.minimum(FEATURE_BASE * SEGMENT_TILT[segment] * noise, 0.9).astype(np.float32)

    def month(self, g: int, first_day: int, n_days: int) -> MonthActivity:
        """Month g (relative to start) spanning day numbers [first_day, first_day + n_days)."""
        u, j = self.users, g + BURN_IN
        # Each user's days of the month: alive on [lo, hi), still in the first 30 days before ob.
        lo = np.clip(u.created - first_day, 0, n_days)
        hi = np.clip(np.minimum(u.deactivated, first_day + n_days) - first_day, 0, n_days)
        ob = np.clip(u.created + ONBOARDING_DAYS - first_day, 0, n_days)
        weight = np.where(u.onboarded, 1.0, NON_ONBOARDED_ACTIVITY)
        engaged = self.rng.random(len(weight), dtype=np.float32) < self.latent.active_share[u.account, j] * weight
        # The users at month start: exactly the latent number of them is engaged (the number the
        # hazard reads), picked with probability in proportion to their weight.
        pool = np.flatnonzero((u.since <= g) & (u.deactivated >= first_day))
        key = np.log(self.rng.random(len(pool))) / weight[pool]  # weighted sampling without replacement
        pool = pool[np.lexsort((-key, u.account[pool]))]
        acc = u.account[pool]
        rank = np.arange(len(pool)) - np.searchsorted(acc, acc)
        engaged[pool] = rank < self.latent.engaged[acc, j]
        day, user = self._user_days(j, first_day, n_days, lo, hi, ob, engaged)
        return MonthActivity(*self._events(j, first_day, day, user), *self._surveys(j, first_day, lo, hi, engaged))

    def _user_days(self, j, first_day, n_days, lo, hi, ob, engaged) -> tuple[np.ndarray, np.ndarray]:
        """(day index, user) of every active user-day, ordered by day then user id. While new, a
        user can be active only if onboarded; later only if engaged this month."""
        u = self.users
        idx = np.flatnonzero((hi > lo) & ((u.onboarded & (ob > lo)) | (engaged & (hi > ob))))
        level = self.latent.usage[u.account[idx], j]
        p = u.propensity[idx] * np.minimum(np.exp(0.35 * level), 1.3)
        d = np.arange(n_days)[:, None]
        eligible = (d >= lo[idx]) & (d < hi[idx]) & np.where(d < ob[idx], u.onboarded[idx], engaged[idx])
        draw = self.rng.random((n_days, len(idx)), dtype=np.float32)
        hit = eligible & (draw < _day_factor(first_day + d[:, 0])[:, None] * p)
        # An engaged user uses the product at least once in the month: one random day if no other.
        first = np.maximum(lo[idx], ob[idx])
        quiet = np.flatnonzero(engaged[idx] & (hi[idx] > first) & ~hit.any(axis=0))
        extra = first[quiet] + np.floor(self.rng.random(len(quiet)) * (hi[idx] - first)[quiet]).astype(np.int64)
        hit[extra, quiet] = True
        day, col = np.nonzero(hit)
        return day, idx[col]

    def _events(self, j, first_day, day, user):
        """Rows per user-day: login, session_minutes, then each feature used that day."""
        rng = self.rng
        account = self.users.account[user]
        level = self.latent.usage[account, j]
        logins = 1.0 + rng.poisson(0.5 * np.exp(0.3 * level))
        # Minutes per login shrink as usage decays: logins that then idle.
        minutes = np.round(logins * np.exp(rng.normal(np.log(12.0) + 0.8 * level, 0.5)), 1)
        used = np.zeros((len(day), len(EVENT_TYPES)), bool)
        used[:, :2] = True
        breadth = 1.0 / (1.0 + np.exp(-(1.2 + 2.0 * level)))  # decaying accounts use fewer features
        for f in range(len(FEATURES)):
            ramp = np.clip((first_day + day - self.release[f]) / ADOPTION_DAYS, 0.0, 1.0)
            used[:, f + 2] = rng.random(len(day), dtype=np.float32) < self.affinity[account, f] * breadth * ramp
        row, kind = np.divmod(np.flatnonzero(used.ravel()), len(EVENT_TYPES))
        quantity = np.empty(len(row))
        quantity[kind == 0] = logins
        quantity[kind == 1] = minutes
        feature_rows = kind >= 2
        quantity[feature_rows] = 1.0 + rng.poisson(1.2, int(feature_rows.sum()))
        return user[row], (first_day + day[row]).astype(np.int32), kind.astype(np.int8), quantity

    def _surveys(self, j, first_day, lo, hi, engaged):
        """NPS: a few users answer each month (engaged ones more often), in line with sentiment."""
        rng = self.rng
        answer = (hi > lo) & (rng.random(len(lo), dtype=np.float32) < np.where(engaged, 0.03, 0.008))
        user = np.flatnonzero(answer)
        day = first_day + lo[user] + np.floor(rng.random(len(user)) * (hi - lo)[user]).astype(np.int64)
        nps = np.round(self.latent.sentiment[self.users.account[user], j] + rng.normal(0, 1.6, len(user)))
        return user, day, np.clip(nps, 0, 10).astype(np.int64)
