"""The market of the simulated A/B test: how campaigns bid for a day's ad slots, and how each slot is sold.

Two designs (``make abtest`` runs both on the same scores and slots):

- **auction** (every slot sold): every campaign bids on every eligible user, its CPM times the arm's score of
  the user over the campaign's mean score (:func:`value_bids`), and each slot goes to the highest bid. A factor
  shared by all of a user's campaigns (how responsive the user is to ads) cancels in that comparison, and the
  division cancels one shared by all of a campaign's users: only how the arm ranks a user's campaigns matters.
- **audience** (each campaign buys an audience): a campaign buys the top ``share`` of its eligible users by the
  arm's score (:func:`audience_pairs`) and bids value within that audience; a slot whose user is in no audience
  (or whose campaigns are capped or spent) goes to outside demand. Who is in the audiences, hence user-level
  targeting, now matters; but an arm also changes how many slots it buys, so arms are compared at matched
  delivery (``evaluation/abtest_figures.py``).

:func:`run_auction` sells slots in time order, each in a second-price auction among the bids of its user: a
campaign enters while under the frequency cap for the user that day and while its remaining budget covers its
own bid; bids below the reserve never enter; the winner pays max(second bid, reserve) / 1000 per impression.

    >>> won = run_auction(slot_users, pair_user, pair_campaign, value_bids(pair_campaign, score, cpm), budget, 3, 5e6)
"""

from __future__ import annotations

import dataclasses

import numpy as np

# Slots are sold in blocks of consecutive slots of distinct users (at most this many), vectorised; see run_auction.
BLOCK_SLOTS = 2048


@dataclasses.dataclass(frozen=True)
class Won:
    """The slots one arm sold on one day: per impression, the slot, the (user, campaign) pair and the price."""

    slot: np.ndarray  # index into the day's slots
    pair: np.ndarray  # index into the pairs given to the auction
    price_micros: np.ndarray  # paid per impression (the clearing CPM / 1000)
    prior_exposures: np.ndarray  # the user's earlier impressions of the campaign today


def value_bids(pair_campaign: np.ndarray, score: np.ndarray, cpm_micros: np.ndarray) -> np.ndarray:
    """Each pair's bid (a CPM, micros): the campaign's CPM times the pair's predicted probability over the mean of
    the campaign's pairs. A campaign whose pairs all score 0 bids its CPM on each."""
    sums = np.bincount(pair_campaign, weights=score, minlength=len(cpm_micros))
    counts = np.bincount(pair_campaign, minlength=len(cpm_micros))
    mean = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)[pair_campaign]
    relative = np.divide(score, mean, out=np.ones_like(score, dtype=float), where=mean > 0)
    return cpm_micros[pair_campaign] * relative


def audience_ranks(
    pair_campaign: np.ndarray, pair_user: np.ndarray, score: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each pair's rank among its campaign's pairs by score (0 = best; ties: the lower user id first), and the
    number of its campaign's pairs."""
    order = np.lexsort((pair_user, -np.asarray(score, np.float64), pair_campaign))
    campaign = pair_campaign[order]
    first = np.r_[0, np.flatnonzero(campaign[1:] != campaign[:-1]) + 1]
    sizes = np.diff(np.r_[first, len(order)])
    rank, size = np.empty(len(order), np.int64), np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order)) - np.repeat(first, sizes)
    size[order] = np.repeat(sizes, sizes)
    return rank, size


def audience_pairs(
    pair_campaign: np.ndarray, pair_user: np.ndarray, score: np.ndarray, share: float, ranks=None
) -> np.ndarray:
    """Positions (ascending) of the pairs in each campaign's audience: its ``ceil(share x eligible users)``
    best-scored pairs (ties: the lower user id first). ``ranks``: :func:`audience_ranks` of the same pairs, when
    several shares are bought from one scoring."""
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1]; got {share}")
    rank, size = audience_ranks(pair_campaign, pair_user, score) if ranks is None else ranks
    return np.flatnonzero(rank < audience_size(share, size))


def audience_size(share: float, eligible: np.ndarray | int) -> np.ndarray:
    """Users a campaign with ``eligible`` users buys at ``share``: ``ceil(share x eligible)``, where a product
    that is an integer but for rounding (0.05 x 20) counts as that integer."""
    return np.ceil(share * np.asarray(eligible, np.float64) - 1e-9).astype(np.int64)


def _ranges(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The concatenated integer ranges [starts[k], ends[k]) and the k each value comes from."""
    lengths = ends - starts
    segment = np.repeat(np.arange(len(starts)), lengths)
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + offsets, segment


def run_auction(
    slot_users: np.ndarray,
    pair_user: np.ndarray,
    pair_campaign: np.ndarray,
    pair_bid: np.ndarray,
    budget_micros: np.ndarray,
    cap: int,
    reserve_cpm_micros: float,
) -> Won:
    """Sell each slot (``slot_users``, in time order) in a second-price auction among the eligible pairs of its user
    (``pair_user``, ``pair_campaign`` index into ``budget_micros``, ``pair_bid`` a CPM): a campaign enters while
    under ``cap`` impressions to the user today and while its budget covers its own bid; bids below the reserve
    never enter. The winner pays max(second bid, reserve) / 1000.

    Exactly the slot-by-slot sale, computed in blocks: a run of consecutive slots of distinct users is sold at
    once against the budgets at its start (no user's cap can change inside it), then checked in time order; from
    the first slot where a campaign's spending earlier in the block would have kept one of its bids out, the
    block is sold again. Ties go to the lower pair index."""
    if cap < 1:
        raise ValueError(f"cap must be >= 1 impression per user, campaign and day; got {cap}")
    if not len(pair_user) == len(pair_campaign) == len(pair_bid):
        raise ValueError("pair_user, pair_campaign and pair_bid must have one entry per pair")
    keep = np.flatnonzero(pair_bid >= reserve_cpm_micros)
    order = keep[np.argsort(pair_user[keep], kind="stable")]
    sorted_users = pair_user[order]
    starts = np.searchsorted(sorted_users, slot_users, "left")
    ends = np.searchsorted(sorted_users, slot_users, "right")
    live_slots = np.flatnonzero(ends > starts)
    # The previous live slot of the same user, to cut blocks where a user comes back.
    users = slot_users[live_slots]
    by_user = np.lexsort((np.arange(len(users)), users))
    previous = np.full(len(users), -1)
    same = users[by_user[1:]] == users[by_user[:-1]]
    previous[by_user[1:][same]] = by_user[:-1][same]
    state = _Market(np.asarray(budget_micros, np.float64).copy(), np.zeros(len(pair_user), np.int64))
    won: list[tuple[np.ndarray, ...]] = []
    i = 0
    while i < len(live_slots):
        stop = min(i + BLOCK_SLOTS, len(live_slots))
        back = np.flatnonzero(previous[i:stop] >= i)
        stop = i + int(back[0]) if back.size else stop
        block = live_slots[i:stop]
        sold, done = _sell_block(
            block, starts[block], ends[block], order, pair_campaign, pair_bid, cap, reserve_cpm_micros, state
        )
        won.append(sold)
        i += done
    if not won:
        empty = np.zeros(0, np.int64)
        return Won(empty, empty, np.zeros(0), empty)
    slots, pairs, prices, priors = (np.concatenate(col) for col in zip(*won, strict=True))
    return Won(slots.astype(np.int64), pairs.astype(np.int64), prices.astype(np.float64), priors.astype(np.int64))


@dataclasses.dataclass
class _Market:
    remaining: np.ndarray  # per campaign, budget left (micros)
    shown: np.ndarray  # per pair, impressions so far today


def _sell_block(
    block: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    order: np.ndarray,
    pair_campaign: np.ndarray,
    pair_bid: np.ndarray,
    cap: int,
    reserve: float,
    state: _Market,
) -> tuple[tuple[np.ndarray, ...], int]:
    """Sell a block of slots of distinct users; returns what was sold and how many of the block's slots are done
    (all, or up to the first slot the budgets at the block's start got wrong)."""
    position, slot_of = _ranges(starts, ends)
    pairs = order[position]
    campaign, bid = pair_campaign[pairs], pair_bid[pairs]
    enters = (state.shown[pairs] < cap) & (state.remaining[campaign] >= bid / 1000.0)
    live = np.where(enters, bid, -np.inf)
    ranked = np.lexsort((-live, slot_of))  # per slot, best first (stable: the lower pair index on ties)
    first = np.r_[0, np.flatnonzero(slot_of[ranked][1:] != slot_of[ranked][:-1]) + 1]
    best = ranked[first]
    has_second = np.r_[first[1:], len(ranked)] - first > 1
    second = np.where(has_second, live[ranked[np.minimum(first + 1, len(ranked) - 1)]], -np.inf)
    sold = np.isfinite(live[best])
    price = np.maximum(second, reserve) / 1000.0
    # What each campaign spent earlier in the block, at each slot: did a bid that entered lose its footing?
    k = len(block)
    winners = np.flatnonzero(sold)
    spent = np.zeros((k + 1, len(state.remaining)))
    np.add.at(spent, (winners + 1, campaign[best[winners]]), price[winners])
    before = np.cumsum(spent, axis=0)[slot_of, campaign]
    wrong = enters & (state.remaining[campaign] - before < bid / 1000.0)
    done = int(slot_of[wrong].min()) if wrong.any() else k
    chosen = winners[winners < done]
    pair = pairs[best[chosen]]
    prior = state.shown[pair].copy()
    state.shown[pair] += 1
    np.subtract.at(state.remaining, pair_campaign[pair], price[chosen])
    return (block[chosen], pair, price[chosen], prior), done
