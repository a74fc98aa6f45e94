"""How scoring turns model scores into audiences, and the serving context it assumes: :class:`ScoringConfig`, whose
fields are also the scoring pipeline's flags (``python -m podtarget.pipelines.score --help``), declared once with
their help and checks (``common/options.py``), and the ``channel:objective=Head`` mapping it reads.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from ...common.checks import check_choice, invalid
from ...common.options import check_options, option
from ...schemas import load_schema
from ...schemas.derived import AUDIENCE_CUTS

DEFAULT_HEADS = "ad:stream=AdStream,promo:stream=PromotionStream,*:click=Click,*:follow=Follow"


def _lookup(mapping: Mapping[tuple[str, str], str], channel: str, objective: str) -> str | None:
    """The exact entry, else ``*:objective``, else ``channel:*``."""
    for key in ((channel, objective), ("*", objective), (channel, "*")):
        if key in mapping:
            return mapping[key]
    return None


def parse_heads(text: str, name: str = "heads") -> dict[tuple[str, str], str]:
    """``"ad:stream=AdStream,*:click=Click"`` as ``{("ad", "stream"): "AdStream", ("*", "click"): "Click"}``;
    ``name`` is the ScoringConfig parameter the text was given as (``heads`` or ``transfers``), for the error."""
    campaign = load_schema("campaign")
    channels = {*campaign.vocabulary("channel"), "*"}
    objectives = {*campaign.vocabulary("objective"), "*"}
    out: dict[tuple[str, str], str] = {}
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        key, _, head = item.partition("=")
        channel, _, objective = key.partition(":")
        if not head or channel not in channels or objective not in objectives:
            raise invalid(
                "ScoringConfig",
                name,
                f"comma-separated channel:objective=Head entries, channel in {sorted(channels)} and objective in "
                f"{sorted(objectives)}",
                item,
            )
        out[(channel, objective)] = head.strip()
    if not out:
        raise invalid("ScoringConfig", name, "at least one channel:objective=Head entry", text)
    return out


@dataclasses.dataclass(frozen=True)
class ScoringConfig:
    """How scoring turns model scores into audiences, and the serving context it assumes.

    Heads: ``heads`` maps ``channel:objective`` to a model head; ``*`` matches any channel or objective, and the
    exact entry wins over ``*:objective``, which wins over ``channel:*``. A campaign whose pair has no entry is
    dead-lettered (``unknown_objective``).

    A head serves only what its loss mask trained: a campaign of channel c and objective o goes to a head whose
    label is ``label_<o>`` and that rows of source c trained (``trained`` of :func:`plan_campaigns`, from
    ``TrainedModel.trained_for``). Any other pairing must be declared in ``transfers`` (same syntax as ``heads``,
    naming the same head), else the campaign is dead-lettered (``untrained_head``): the default maps ``*:follow``
    to Follow, a promotion task that ad rows never train, so ad follow campaigns are dead-lettered unless
    ``transfers="ad:follow=Follow"`` declares that use.

    Audiences: ``audience_cut="top_k"`` keeps the best ``audience_size`` eligible users of every campaign.
    ``"budget"`` sizes an ad campaign with a budget and a CPM by what it can buy in a day: ``budget / campaign days
    / CPM * 1000`` impressions, over ``impressions_per_user`` impressions per user, rounded down; promotions (no
    budget) keep ``audience_size``. Either way the size is capped by the eligible users.

    Serving context (the model was trained on served impressions, so a candidate pair needs one): the hour of day
    ``hour`` (UTC) of day D and its weekday; the user's primary device (``device="primary"``, or one device family
    for everyone) and home market. Ads: the campaign's creative with the lowest id, in the slot its format serves in
    (``ad_slot="auto"``: display -> home_banner, audio and video -> midroll) on that slot's surface
    (``ad_surface="auto"``: home for home_banner, else now_playing), or the given slot and surface. Promotions:
    ``promo_slot``, ``promo_layout``, ``promo_position`` on ``promo_surface``.

    Blocks: users are scored ``users_per_block`` at a time against every campaign, fewer when the campaigns are so
    many that a block would exceed ``max_pairs_per_block`` (user, campaign) pairs (memory is bounded by it).

    Example::

        >>> ScoringConfig(audience_cut="budget", impressions_per_user=2).cut_for("ad", 300_000_000, 15_000_000, 10)
        (1000, 'budget')
    """

    heads: str = option(
        DEFAULT_HEADS,
        "channel:objective=Head, comma-separated; * matches any channel or objective. A head serves only the channels "
        "and label its loss mask trained (else the campaign is dead-lettered, untrained_head).",
    )
    transfers: str = option(
        "",
        "Declared transfers, as --heads: a head serving a channel:objective it was not trained for, e.g. "
        "ad:follow=Follow (a promotion head for ad follow campaigns).",
    )
    audience_cut: str = option("top_k", "top_k or budget.", choices=sorted(AUDIENCE_CUTS))
    audience_size: int = option(1000, "Users per audience (top_k).", low=1)
    impressions_per_user: float = option(
        3.0, "budget cut: users = budget / days / CPM * 1000 / impressions_per_user.", above=0
    )
    top_n: int = option(10, "Campaigns per user in user_rankings.", low=1)
    hour: int = option(19, "Serving hour of day (UTC) assumed.", low=0, high=23)
    device: str = option("primary", "primary (the user's) or one device family.")
    ad_slot: str = option("auto", "auto (by creative format) or a slot.")
    ad_surface: str = option("auto", "auto (by slot) or a surface.")
    promo_slot: str = option("home_shelf", "Promotion slot assumed.")
    promo_layout: str = option("card", "Promotion layout assumed.")
    promo_position: int = option(0, "0-based position.", low=0)
    promo_surface: str = option("home", "Promotion surface assumed.")
    users_per_block: int = option(4096, "Users per scored element.", low=1)
    max_pairs_per_block: int = option(
        4_000_000, "Cap on users x campaigns per element (fewer users per block when campaigns are many).", low=1
    )

    def __post_init__(self) -> None:
        owner = "ScoringConfig"
        check_options(self)
        # The serving context's values are the logs' own vocabularies (schemas/avro), read when a config is made.
        ad, promo = load_schema("ad_impression"), load_schema("promo_impression")
        choices = {
            "device": ("primary", *ad.vocabulary("device")),
            "ad_slot": ("auto", *ad.vocabulary("slot")),
            "ad_surface": ("auto", *ad.vocabulary("surface")),
            "promo_slot": promo.vocabulary("slot"),
            "promo_layout": promo.vocabulary("layout"),
            "promo_surface": promo.vocabulary("surface"),
        }
        for name, allowed in choices.items():
            check_choice(owner, name, getattr(self, name), allowed)
        parse_heads(self.heads)
        if self.transfers:
            parse_heads(self.transfers, "transfers")

    @property
    def head_map(self) -> dict[tuple[str, str], str]:
        return parse_heads(self.heads)

    def head_for(self, channel: str, objective: str) -> str | None:
        """The head that scores a campaign of ``channel`` and ``objective``; None when nothing maps it."""
        return _lookup(self.head_map, channel, objective)

    def untrained_use(
        self, channel: str, objective: str, head: str, trained: Mapping[str, tuple[str, tuple[str, ...]]]
    ) -> str | None:
        """Why ``head`` may not serve ``channel:objective`` (None when it may): its loss mask never trained it on
        rows of that channel for that label, and no transfer declares the use."""
        label, sources = trained[head]
        if label == f"label_{objective}" and channel in sources:
            return None
        if self.transfers and _lookup(parse_heads(self.transfers, "transfers"), channel, objective) == head:
            return None
        what = f"{label} on {' and '.join(sources) or 'no'} rows"
        return (
            f"head {head} was trained for {what}, not for {channel}:{objective}; map another head with --heads, or "
            f"declare the transfer with --transfers={channel}:{objective}={head}"
        )

    def cut_for(self, channel: str, budget_micros: int | None, cpm_micros: int | None, days: int) -> tuple[int, str]:
        """The audience size a campaign asks for (before the cap by eligible users) and the rule that set it."""
        if self.audience_cut == "budget" and channel == "ad" and budget_micros and cpm_micros and days > 0:
            impressions_per_day = budget_micros / days / cpm_micros * 1000
            return math.floor(impressions_per_day / self.impressions_per_user), "budget"
        return self.audience_size, "top_k"

    def block_users(self, n_campaigns: int) -> int:
        """Users per block: ``users_per_block``, fewer if the block would exceed ``max_pairs_per_block`` pairs."""
        return max(1, min(self.users_per_block, self.max_pairs_per_block // max(n_campaigns, 1)))
