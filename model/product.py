"""Model inputs and scores for every pair of two (or more) sides, without encoding a row per pair.

Scoring asks the model about many users against many campaigns. Each input column of a pair comes from one side:
the user alone (profile, history), the campaign alone (show, creative, context), or a small table of pair kinds
(does the user know the show?). Encoding a row per pair would hash the same user columns once per campaign. Here
each side is encoded once, with the model's own :class:`~podtarget.model.data.Encoder`, and pairs gather their rows::

    >>> sides = {"user": user_table, "campaign": campaign_table, "pair": pair_kinds}    # disjoint columns
    >>> index = {"user": user_of_pair, "campaign": campaign_of_pair, "pair": kind_of_pair}
    >>> batch = encode_product(model.encoder, sides, index)   # == model.encode(the pair rows, materialised)
    >>> scorer = ProductScorer(model)
    >>> layout = scorer.layout({name: t.schema for name, t in sides.items()})
    >>> prepared = {name: scorer.prepare(layout, name, t) for name, t in sides.items()}
    >>> probs = scorer.score(layout, prepared, index, head_of_pair, ["AdStream", "Click"])

:class:`ProductScorer` goes one step further for speed. The network's first linear layer sees the concatenated
inputs ``x``, and ``W x = sum over sides of W[:, side columns] x[side columns]``. So each side's share of that
layer is computed once per side row, and a pair only adds the shares of its rows. That removes the embedding
look-ups and most of the multiply-adds per pair (about 4x fewer). The result equals the network's own forward
pass up to float rounding (the terms are summed in another order). Every :meth:`ProductScorer.score` call checks
this on a sample of its pairs against ``network.predict(encode_product(...))``, and raises
:class:`ProductError` if the two differ by more than ``tolerance``. An architecture it cannot factorise is
scored through ``encode_product`` and the network's forward pass instead (``factorised=False`` forces that).

Nothing here knows of Beam or of podcasts: sides are any Arrow tables whose columns partition the spec's columns.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import cast

import numpy as np
import pyarrow as pa
import torch
from torch import nn

from .artifacts import TrainedModel
from .data.encoding import Batch, Encoder, RowBlock
from .network import MMoE, MultiTaskNetwork, SharedBottom

# Null columns that pad a side to every spec column before encoding. Their type does not matter (a null encodes
# as row 0, an empty bag or a missing number whatever its type), and they are dropped again: another side owns them.
_PAD_TYPES = {"categorical": pa.int64(), "multi_categorical": pa.list_(pa.int64()), "numeric": pa.float64()}


class ProductError(ValueError):
    """Sides or pair indices that do not describe a product of the model's input columns."""


@dataclasses.dataclass(frozen=True)
class ProductLayout:
    """Which side owns each input column, and where each side's columns sit in the encoded arrays.

    Build it with :meth:`ProductScorer.layout` or :func:`product_layout` once per set of side schemas.
    """

    sides: tuple[str, ...]
    owner: Mapping[str, str]  # column -> side, for every column the encoder reads (and labels a side carries)
    cat: Mapping[str, np.ndarray]  # side -> its positions among the encoder's single-valued features
    bags: Mapping[str, np.ndarray]  # side -> its positions among the bag features
    num: Mapping[str, np.ndarray]  # side -> its columns of the numeric block
    pad: Mapping[str, tuple[tuple[str, pa.DataType], ...]]  # side -> null columns it is padded with


def product_layout(encoder: Encoder, schemas: Mapping[str, pa.Schema]) -> ProductLayout:
    """Check that every column the encoder reads is in exactly one side; labels may be in one side or none."""
    labels = {t.label for t in encoder.spec.tasks}
    holders: dict[str, list[str]] = {}
    for side, schema in schemas.items():
        for name in schema.names:
            holders.setdefault(name, []).append(side)
    problems = []
    for column in encoder.columns:
        found = holders.get(column, [])
        if len(found) > 1:
            problems.append(f"column {column!r} is in several sides ({', '.join(found)}); each must be in one")
        elif not found and column not in labels:
            problems.append(f"column {column!r} is in no side; sides: {', '.join(schemas) or 'none'}")
    if problems:
        raise ProductError("; ".join(problems))
    owner = {c: holders[c][0] for c in encoder.columns if c in holders}
    kinds = {f.name: f.kind for f in encoder.spec.active_features}

    def pad_type(column: str) -> pa.DataType:
        return _PAD_TYPES.get(kinds.get(column, ""), pa.string())  # the source column and labels: strings will do

    num_owner = [owner[f.name] for f in encoder.numeric for _ in range(2 if f.missing else 1)]
    sides = tuple(schemas)
    return ProductLayout(
        sides=sides,
        owner=owner,
        cat={s: np.array([j for j, f in enumerate(encoder.single) if owner[f.name] == s], np.int64) for s in sides},
        bags={s: np.array([j for j, f in enumerate(encoder.bags) if owner[f.name] == s], np.int64) for s in sides},
        num={s: np.array([k for k, o in enumerate(num_owner) if o == s], np.int64) for s in sides},
        pad={
            s: tuple((c, pad_type(c)) for c in encoder.columns if c in owner and owner[c] != s and c not in labels)
            for s in sides
        },
    )


def encode_side(encoder: Encoder, layout: ProductLayout, side: str, table: pa.Table) -> RowBlock:
    """One side's rows encoded by the model's encoder (its columns real, the others padded with nulls)."""
    missing = [c for c, s in layout.owner.items() if s == side and c not in table.column_names]
    if missing:
        raise ProductError(f"side {side!r} lacks its column(s) {missing}")
    padded = table
    for column, typ in layout.pad[side]:
        if column not in padded.column_names:
            padded = padded.append_column(column, pa.nulls(table.num_rows, typ))
    return encoder.encode_rows(padded)


def _indices(layout: ProductLayout, blocks: Mapping[str, RowBlock], pair_index: Mapping[str, np.ndarray]) -> int:
    if set(pair_index) != set(layout.sides):
        raise ProductError(f"pair_index has sides {sorted(pair_index)}; expected {sorted(layout.sides)}")
    sizes = {s: len(i) for s, i in pair_index.items()}
    if len(set(sizes.values())) > 1:
        raise ProductError(f"pair indices differ in length: {sizes}")
    for side, index in pair_index.items():
        rows = blocks[side].n
        if len(index) and (index.min() < 0 or index.max() >= rows):
            raise ProductError(f"pair_index[{side!r}] points outside the side's {rows} rows")
    return next(iter(sizes.values()), 0)


def gather_product(
    encoder: Encoder, layout: ProductLayout, blocks: Mapping[str, RowBlock], pair_index: Mapping[str, np.ndarray]
) -> RowBlock:
    """The encoded rows of the pairs: each column gathered from the side that owns it."""
    n = _indices(layout, blocks, pair_index)
    spec = encoder.spec
    f1, f2 = len(encoder.single), len(encoder.bags)
    cat = np.empty((n, f1), np.int64)
    bag_len = np.empty((n, f2), np.int64)
    num = np.empty((n, encoder.num_width), np.float32)
    src_start = np.empty((n, f2), np.int64)
    values, offset = [], 0
    for side in layout.sides:
        block, index = blocks[side], pair_index[side]
        cols = layout.cat[side]
        cat[:, cols] = block.cat[:, cols][index]
        cols = layout.num[side]
        num[:, cols] = block.num[:, cols][index]
        cols = layout.bags[side]
        if len(cols):
            starts = (np.cumsum(block.bag_len.ravel()) - block.bag_len.ravel()).reshape(block.bag_len.shape)
            bag_len[:, cols] = block.bag_len[:, cols][index]
            src_start[:, cols] = starts[:, cols][index] + offset
            values.append(block.bag_val)
            offset += block.bag_val.size
    # Bag values row-major (pair 0's features in order, then pair 1's, ...), each run copied from its side.
    lengths = bag_len.ravel()
    out_start = np.cumsum(lengths) - lengths
    source = np.concatenate(values) if values else np.empty(0, np.int64)
    bag_val = source[np.repeat(src_start.ravel() - out_start, lengths) + np.arange(int(lengths.sum()))]
    y = np.zeros((n, len(spec.tasks)), np.float32)
    obs = np.zeros((n, len(spec.tasks)), bool)
    for i, task in enumerate(spec.tasks):
        owner = layout.owner.get(task.label)
        if owner is not None:
            y[:, i] = blocks[owner].y[pair_index[owner], i]
            obs[:, i] = blocks[owner].obs[pair_index[owner], i]

    def per_row(column: str | None, field: str) -> np.ndarray:
        if column is None and field == "source":  # one implicit source: the encoder gives every row source 0
            return np.zeros(n, np.int64)
        side = layout.owner.get(column) if column else None
        if side is None:
            return np.full(n, -1, np.int64)
        return getattr(blocks[side], field)[pair_index[side]]

    return RowBlock(
        cat, bag_len, bag_val, num, y, obs, per_row(spec.source_column, "source"), per_row(spec.slice_column, "slice")
    )


def encode_product(encoder: Encoder, sides: Mapping[str, pa.Table], pair_index: Mapping[str, np.ndarray]) -> Batch:
    """The :class:`~podtarget.model.data.Batch` of the pairs ``(sides[s][pair_index[s][i]] for every side s)``.

    Each spec column must come from exactly one side (:class:`ProductError` otherwise). The result is identical to
    encoding the pair rows materialised as one table, since the encoder works column by column.
    """
    layout = product_layout(encoder, {s: t.schema for s, t in sides.items()})
    blocks = {s: encode_side(encoder, layout, s, t) for s, t in sides.items()}
    index = {s: np.asarray(i, np.int64) for s, i in pair_index.items()}
    return encoder.to_batch(gather_product(encoder, layout, blocks, index))


# -------------------------------------------------------------------------------------- factorised scoring


@dataclasses.dataclass
class PreparedSide:
    """A side encoded once: its rows (for the exactness check), and its share of each entry layer's output."""

    block: RowBlock
    shares: list[torch.Tensor]  # one [rows, width] tensor per entry layer; the bias is added once per pair


class ProductScorer:
    """Probabilities of chosen heads for every pair of a product, factorised through the first linear layers.

    ``chunk_rows`` pairs go through the network at a time (a few thousand to tens of thousands: big enough for
    efficient matrix products, small enough for the CPU caches). ``check_rows`` pairs of every :meth:`score` call
    are also scored the plain way (``encode_product`` then the network's forward pass) and must agree within
    ``tolerance``.
    """

    def __init__(
        self,
        model: TrainedModel,
        *,
        chunk_rows: int = 16384,
        check_rows: int = 64,
        tolerance: float = 1e-5,
        factorised: bool = True,
        fuse_rows: int = 65536,
    ):
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
        self.model, self.encoder, self.network = model, model.encoder, model.network
        self.network.eval()
        self.chunk_rows, self.check_rows, self.tolerance = chunk_rows, check_rows, tolerance
        self.fuse_rows = fuse_rows
        self.entry = _entry_layers(self.network) if factorised else None
        self.factorised = self.entry is not None
        dim = self.network.embedding.dim
        f1, f2 = len(self.encoder.single), len(self.encoder.bags)
        self._x_width = (f1 + f2) * dim + self.encoder.num_width
        self._dim, self._f1 = dim, f1

    def layout(self, schemas: Mapping[str, pa.Schema]) -> ProductLayout:
        return product_layout(self.encoder, schemas)

    def _x_columns(self, layout: ProductLayout, side: str) -> torch.Tensor:
        """The side's columns of the network input ``x = [single embeddings, bag embeddings, numerics]``."""
        dim, f1 = self._dim, self._f1
        cols = [np.arange(j * dim, (j + 1) * dim) for j in layout.cat[side]]
        cols += [np.arange((f1 + k) * dim, (f1 + k + 1) * dim) for k in layout.bags[side]]
        cols.append(self._x_width - self.encoder.num_width + layout.num[side])
        return torch.from_numpy(np.concatenate(cols).astype(np.int64))

    @torch.inference_mode()
    def prepare(self, layout: ProductLayout, side: str, table: pa.Table) -> PreparedSide:
        """Encode one side and compute its share of the entry layers (reusable across calls, e.g. cached)."""
        block = encode_side(self.encoder, layout, side, table)
        shares: list[torch.Tensor] = []
        if self.entry is not None and block.n:
            batch = self.encoder.to_batch(block)
            x = torch.cat([*self.network.embedding(batch), batch.num], dim=1)
            cols = self._x_columns(layout, side)
            mine = x.index_select(1, cols)
            shares = [mine @ layer.weight.index_select(1, cols).T for layer in self.entry]
        return PreparedSide(block, shares)

    @torch.inference_mode()
    def score(
        self,
        layout: ProductLayout,
        sides: Mapping[str, PreparedSide],
        pair_index: Mapping[str, np.ndarray],
        head_of_pair: np.ndarray,
        heads: Sequence[str],
    ) -> np.ndarray:
        """Probability (float32) of head ``heads[head_of_pair[i]]`` for each pair ``i``."""
        blocks = {s: p.block for s, p in sides.items()}
        pair_index = {s: np.asarray(i, np.int64) for s, i in pair_index.items()}
        n = _indices(layout, blocks, pair_index)
        unknown = [h for h in heads if h not in self.network.tasks]
        if unknown:
            raise ProductError(f"unknown head(s) {unknown}; the model has {', '.join(self.network.tasks)}")
        head_of_pair = np.asarray(head_of_pair)
        if len(head_of_pair) != n:
            raise ProductError(f"head_of_pair has {len(head_of_pair)} entries for {n} pairs")
        out = np.empty(n, np.float32)
        if self.factorised:
            shares, fused_index = _fuse_small_sides({s: p.shares for s, p in sides.items()}, pair_index, self.fuse_rows)
            index = {s: torch.from_numpy(i) for s, i in fused_index.items()}
        for start in range(0, n, self.chunk_rows):
            stop = min(start + self.chunk_rows, n)
            chunk_heads = head_of_pair[start:stop]
            if self.factorised:
                chunk = {s: i[start:stop] for s, i in index.items()}
                logits = self._factorised_logits(shares, chunk, chunk_heads, heads)
            else:
                rows = gather_product(self.encoder, layout, blocks, {s: i[start:stop] for s, i in pair_index.items()})
                logits = self._plain_logits(self.encoder.to_batch(rows), chunk_heads, heads)
            out[start:stop] = torch.sigmoid(logits).numpy()
        if self.factorised and n:
            self._check(layout, blocks, pair_index, head_of_pair, heads, out)
        return out

    def _plain_logits(self, batch: Batch, chunk_heads: np.ndarray, heads: Sequence[str]) -> torch.Tensor:
        logits = self.network(batch)
        columns = torch.tensor([self.network.tasks.index(h) for h in heads])[torch.from_numpy(chunk_heads)]
        return logits.gather(1, columns.unsqueeze(1)).squeeze(1)

    def _factorised_logits(
        self,
        shares: Mapping[str, list[torch.Tensor]],
        index: Mapping[str, torch.Tensor],
        chunk_heads: np.ndarray,
        heads: Sequence[str],
    ) -> torch.Tensor:
        assert self.entry is not None  # only factorised scorers come here
        entry_out = []
        for k, layer in enumerate(self.entry):
            parts = [side_shares[k].index_select(0, index[side]) for side, side_shares in shares.items()]
            total = parts[0]
            for share in parts[1:]:
                total.add_(share)
            entry_out.append(total if layer.bias is None else total.add_(layer.bias))
        logits = torch.empty(len(chunk_heads))
        encoder = self.network.encoder
        if isinstance(encoder, SharedBottom):
            z_all = encoder.norm(encoder.body[1:](entry_out[0]))
        else:
            assert isinstance(encoder, MMoE)  # _entry_layers factorises only these two shapes
            n_experts = len(encoder.experts)
            experts = torch.stack(
                [_after_entry(e)(h) for e, h in zip(encoder.experts, entry_out[:n_experts], strict=True)],
                dim=1,
            )
        for k, head in enumerate(heads):
            rows = np.flatnonzero(chunk_heads == k)
            if not len(rows):
                continue
            where = torch.from_numpy(rows)
            task = self.network.tasks.index(head)
            if isinstance(encoder, SharedBottom):
                z = z_all.index_select(0, where)
            else:
                gate = torch.softmax(entry_out[n_experts + task].index_select(0, where), dim=1)
                z = (gate.unsqueeze(2) * experts.index_select(0, where)).sum(1)
            logits[where] = self.network.towers[head](z).squeeze(1)
        return logits

    def _check(self, layout, blocks, pair_index, head_of_pair, heads, got: np.ndarray) -> None:
        """The factorised scores of a sample of pairs must equal the network's own forward pass on them."""
        n = len(got)
        sample = np.unique(np.linspace(0, n - 1, min(self.check_rows, n)).astype(np.int64))
        rows = gather_product(self.encoder, layout, blocks, {s: i[sample] for s, i in pair_index.items()})
        want = torch.sigmoid(self._plain_logits(self.encoder.to_batch(rows), head_of_pair[sample], heads)).numpy()
        worst = float(np.max(np.abs(want - got[sample])))
        if not worst <= self.tolerance:
            raise ProductError(
                f"the factorised forward pass differs from the network's own by {worst:.3g} (tolerance "
                f"{self.tolerance:g}) on a sample of {len(sample)} pairs: has the network's structure changed? "
                "Score with factorised=False until ProductScorer follows it."
            )


def _fuse_small_sides(
    shares: Mapping[str, list[torch.Tensor]], pair_index: Mapping[str, np.ndarray], max_rows: int
) -> tuple[dict[str, list[torch.Tensor]], dict[str, np.ndarray]]:
    """Replace the two smallest sides by their product while it has at most ``max_rows`` rows (e.g. campaigns x
    pair kinds), so a pair gathers one share row fewer: the sums are precomputed once per call."""
    shares, index = dict(shares), {s: np.ascontiguousarray(i, dtype=np.int64) for s, i in pair_index.items()}
    while len(shares) > 2:
        a, b = sorted(shares, key=lambda s: shares[s][0].shape[0])[:2]
        rows_a, rows_b = shares[a][0].shape[0], shares[b][0].shape[0]
        if rows_a * rows_b > max_rows:
            break
        fused = [
            (x.unsqueeze(1) + y.unsqueeze(0)).reshape(rows_a * rows_b, -1)
            for x, y in zip(shares.pop(a), shares.pop(b), strict=True)
        ]
        shares[f"{a}*{b}"] = fused
        index[f"{a}*{b}"] = index.pop(a) * rows_b + index.pop(b)
    return shares, index


def _after_entry(expert: nn.Module) -> nn.Sequential:
    """An MMoE expert, ``Sequential(MLP body, batch norm)``, without its body's first layer (computed factorised)."""
    body, norm = cast(nn.Sequential, expert)
    return nn.Sequential(*list(cast(nn.Sequential, body))[1:], norm)


def _entry_layers(network: MultiTaskNetwork) -> list[nn.Linear] | None:
    """The linear layers that read the network input ``x``, in the order the factorised pass uses them: the shared
    bottom's first layer, or each MMoE expert's first layer then each task's gate. None when the network is not one
    of these shapes, or has interactions or cross layers (it is then scored by its plain forward pass)."""
    if network.interaction is not None or network.cross is not None:
        # Their inputs mix the columns of several sides (dots of user and show embeddings, crosses of x with
        # itself), so no side's share of the first layer can be computed alone.
        return None
    encoder = network.encoder
    if isinstance(encoder, SharedBottom) and len(encoder.body) and isinstance(encoder.body[0], nn.Linear):
        return [encoder.body[0]]
    if isinstance(encoder, MMoE):
        # An MMoE expert is Sequential(MLP body, batch norm); its body's first layer reads x.
        bodies = [cast(nn.Sequential, cast(nn.Sequential, expert)[0]) for expert in encoder.experts]
        if all(len(body) and isinstance(body[0], nn.Linear) for body in bodies):
            return [cast(nn.Linear, body[0]) for body in bodies] + [cast(nn.Linear, gate) for gate in encoder.gates]
    return None
