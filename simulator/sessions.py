"""The world's session model: when users listen and how many ad slots a session has.

Users signed up by a day have Poisson(activity) sessions that day, at hours of a listening curve that peaks on the
morning commute and in the evening; a free user's session has min(Poisson(ads_per_session), 3) ad slots, a premium
user's none. :func:`day_sessions` draws the sessions the logs come from (``ShardSimulator`` in
:mod:`podtarget.simulator.behaviour` serves them promotions and ads); :func:`ad_opportunities` draws a
counterfactual day's ad slots from the same model (the simulated A/B test's inventory).
"""

from __future__ import annotations

import numpy as np

from ..schemas.units import MS_PER_HOUR
from .config import DEVICES
from .world import World

# Local listening hours peak on the morning commute and in the evening.
_HOUR_WEIGHTS = np.array(
    [
        1,
        0.6,
        0.4,
        0.3,
        0.3,
        0.6,
        1.5,
        3.0,
        4.0,
        3.0,
        2.2,
        2.0,
        2.3,
        2.0,
        1.9,
        2.0,
        2.4,
        3.2,
        3.6,
        3.8,
        4.0,
        3.5,
        2.6,
        1.6,
    ]
)
_HOUR_P = _HOUR_WEIGHTS / _HOUR_WEIGHTS.sum()
MAX_ADS_PER_SESSION = 3


def day_sessions(
    world: World, users: np.ndarray, day: int, day_start: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """The listening sessions of day ``day`` (offset from the start; ``day_start`` its first epoch millisecond) of
    ``users`` (indices), the ones the logs are drawn from: users signed up by then have Poisson(activity) sessions,
    each at an hour of the day's listening curve, on the user's primary device 80% of the time (else any device).
    Returns ``user``, ``round`` (the session's number among its user's that day), ``hour``, ``ts`` and ``device``
    per session, grouped by user."""
    w = world
    active = users[w.users.signup_day[users] <= day]
    n_sessions = rng.poisson(w.users.activity[active])
    sess_user = np.repeat(active, n_sessions)
    starts = np.repeat(np.cumsum(n_sessions) - n_sessions, n_sessions)
    sess_round = np.arange(len(sess_user)) - starts
    hour = rng.choice(24, size=len(sess_user), p=_HOUR_P)
    sess_ts = day_start + hour * MS_PER_HOUR + rng.integers(0, MS_PER_HOUR, size=len(sess_user))
    sess_device = np.where(
        rng.random(len(sess_user)) < 0.8, w.users.device[sess_user], rng.integers(0, len(DEVICES), len(sess_user))
    )
    return {"user": sess_user, "round": sess_round, "hour": hour, "ts": sess_ts, "device": sess_device}


def ad_opportunities(world: World, day: int, users: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The ad slots of day ``day`` (offset from the start) for ``users`` (indices), from the world's session model,
    the one ``ShardSimulator`` draws its ad slots from: users signed up by then have Poisson(activity)
    sessions at hours of the day's listening curve, and a free user's session has min(Poisson(ads_per_session), 3)
    ad slots (premium users none). Returns ``user``, ``hour`` and ``minute`` (of the day) per slot, in time order.

    These are fresh draws for a counterfactual day (the simulated A/B test's inventory), not the sessions the
    logs were drawn from."""
    users = np.asarray(users, np.int64)
    w = world.users
    active = users[(w.signup_day[users] <= day) & ~w.premium[users]]
    sessions = rng.poisson(w.activity[active])
    user = np.repeat(active, sessions)
    minute = rng.choice(24, size=len(user), p=_HOUR_P) * 60 + rng.integers(0, 60, size=len(user))
    slots = np.minimum(rng.poisson(world.config.ads_per_session, size=len(user)), MAX_ADS_PER_SESSION)
    user, minute = np.repeat(user, slots), np.repeat(minute, slots)
    order = np.argsort(minute, kind="stable")
    return {"user": user[order], "hour": minute[order] // 60, "minute": minute[order]}
