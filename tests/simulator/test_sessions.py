"""The world's session model: a logged day's sessions and a counterfactual day's ad slots. What the shards log
from the sessions is checked in test_behaviour.py."""

import math

import numpy as np
import pytest

from podtarget.simulator import World, WorldConfig
from podtarget.simulator.sessions import ad_opportunities, day_sessions
from podtarget.simulator.world import rng_for


def test_ad_opportunities_come_from_the_session_model():
    """A counterfactual day's ad slots: none for premium users or users not signed up yet, deterministic for a
    seed, in time order, and as many on average as activity x ads per session (capped at 3 a session) predicts."""
    world = World.generate(WorldConfig.preset("tiny", n_users=20_000, users_per_shard=5_000))
    users = np.arange(world.config.n_users)
    slots = ad_opportunities(world, 2, users, rng_for(5, 1))
    again = ad_opportunities(world, 2, users, rng_for(5, 1))
    assert all(np.array_equal(slots[k], again[k]) for k in slots)
    assert not np.array_equal(slots["user"], ad_opportunities(world, 2, users, rng_for(5, 2))["user"])
    assert (np.diff(slots["minute"]) >= 0).all() and (slots["hour"] == slots["minute"] // 60).all()
    u = world.users
    assert not u.premium[slots["user"]].any() and (u.signup_day[slots["user"]] <= 2).all()
    eligible = ~u.premium & (u.signup_day <= 2)
    lam = world.config.ads_per_session
    per_session = sum(min(k, 3) * np.exp(-lam) * lam**k / math.factorial(k) for k in range(30))
    expected = (u.activity[eligible] * per_session).sum()
    assert len(slots["user"]) == pytest.approx(expected, rel=0.03)
    # Only the users asked for.
    some = ad_opportunities(world, 2, users[:100], rng_for(5, 1))
    assert set(some["user"].tolist()) <= set(range(100))


def test_a_days_sessions_are_those_of_the_users_signed_up_by_then():
    """Sessions only of the users asked for and signed up by the day, grouped by user with their rounds counted
    from 0, inside the day, deterministic for a seed."""
    world = World.generate(WorldConfig.preset("tiny"))
    users = np.arange(10, world.config.n_users)
    day, day_start = 3, 1_000 * 86_400_000
    sessions = day_sessions(world, users, day, day_start, rng_for(5, 1))
    again = day_sessions(world, users, day, day_start, rng_for(5, 1))
    assert all(np.array_equal(sessions[k], again[k]) for k in sessions)
    user = sessions["user"]
    assert len(user) > 0 and (np.diff(user) >= 0).all() and (user >= 10).all()
    assert (world.users.signup_day[user] <= day).all()
    first = np.r_[True, np.diff(user) > 0]
    assert (sessions["round"][first] == 0).all() and (np.diff(sessions["round"])[~first[1:]] == 1).all()
    assert ((sessions["hour"] >= 0) & (sessions["hour"] < 24)).all()
    assert ((sessions["ts"] - day_start) // 3_600_000 == sessions["hour"]).all()
