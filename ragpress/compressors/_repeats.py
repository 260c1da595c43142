"""Find repeated runs in a sequence of integer codes, longest first (numpy, no Python per token).

The meta-token compressor replaces a run of ``N`` symbols that occurs ``K`` times (no two
occurrences overlapping) by one meta symbol, paying ``N + def_cost`` for its dictionary entry and
``ref_cost`` per use. A run is worth it when ``N*K > def_cost + N + ref_cost*K``; with one-token
meta symbols that is the paper's ``N*K > 1 + N + K``.

One pass per run length, from long to short. In a pass every free window is hashed (polynomial
hash over the whole sequence, so each window costs O(1)), equal hashes form groups, and windows
are chosen so that none overlap: within a group by stepping ``L`` along chains of overlapping
windows, across groups by a few rounds of "keep a window when no overlapping window has a higher
gain" (each round is vectorised). Chosen groups are compared symbol by symbol, so a hash
collision can cost compression but never exactness.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_P = np.uint64(0x9E3779B97F4A7C15)  # odd, so invertible modulo 2**64
_P_INV = np.uint64(pow(int(_P), -1, 2**64))
_ROUNDS = 6


@dataclass(frozen=True)
class Repeats:
    """Groups of equal runs, all ``length`` long: ``positions[i]`` is a use of ``group[i]``.

    Groups are numbered ``0..groups-1``; no two uses (of any group) overlap.
    """

    length: int
    positions: np.ndarray
    group: np.ndarray

    @property
    def groups(self) -> int:
        return int(self.group.max()) + 1 if len(self.group) else 0

    def first_positions(self) -> np.ndarray:
        """Each group's earliest use: where its dictionary entry is read from."""
        first = np.full(self.groups, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, self.group, self.positions)
        return first

    def covered(self) -> np.ndarray:
        """Every index the uses cover."""
        return (self.positions[:, None] + np.arange(self.length)).ravel()


class _WindowHasher:
    """O(1) hash of any window ``codes[i:i+L]`` after O(n) preparation."""

    def __init__(self, codes: np.ndarray) -> None:
        n = len(codes)
        with np.errstate(over="ignore"):
            powers = np.cumprod(np.full(n + 1, _P, dtype=np.uint64))
            self._powers = np.concatenate([[np.uint64(1)], powers[:-1]])  # P**i
            inverse = np.cumprod(np.full(n + 1, _P_INV, dtype=np.uint64))
            inverse = np.concatenate([[np.uint64(1)], inverse[:-1]])  # P**-i
            terms = (codes.astype(np.uint64) + np.uint64(1)) * inverse[:n]
            self._prefix = np.concatenate([[np.uint64(0)], np.cumsum(terms, dtype=np.uint64)])

    def __call__(self, starts: np.ndarray, length: int) -> np.ndarray:
        with np.errstate(over="ignore"):
            return (self._prefix[starts + length] - self._prefix[starts]) * self._powers[
                starts + length
            ]


def find_repeats(
    codes: np.ndarray, *, ref_cost: int = 1, def_cost: int = 1, max_run: int = 512
) -> list[Repeats]:
    """Profitable non-overlapping repeated runs of ``codes``, longest runs chosen first."""
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    n = len(codes)
    shortest = ref_cost + 1  # below this no number of uses pays for the entry
    if n < 2 * shortest:
        return []
    hasher = _WindowHasher(codes)
    longest = _repeat_upper_bounds(codes, hasher, shortest, max_run)
    covered = np.zeros(n, dtype=bool)
    covered_before = np.zeros(n + 1, dtype=np.int64)  # covered_before[i] = covered[:i].sum()
    repeats: list[Repeats] = []
    length = int(min(max_run, longest.max(initial=0)))
    while length >= shortest:
        starts = np.flatnonzero(longest >= length)
        starts = starts[covered_before[starts + length] == covered_before[starts]]
        found = _choose_windows(codes, hasher, starts, length, ref_cost, def_cost)
        if found.groups:
            covered[found.covered()] = True
            repeats.append(found)
            np.cumsum(covered, out=covered_before[1:])
        length -= max(1, length // 8)
    return repeats


def _repeat_upper_bounds(
    codes: np.ndarray, hasher: _WindowHasher, shortest: int, max_run: int
) -> np.ndarray:
    """For each position, a bound on the longest repeated run starting there.

    If ``codes[i:i+L]`` repeats, so does every window of length ``l <= L`` inside it; hence the
    run of consecutive positions whose ``l``-window repeats bounds ``L`` by ``run + l - 1``.
    Levels ``l`` grow geometrically and each level only hashes the survivors of the one before.
    """
    n = len(codes)
    bound = np.full(n, min(max_run, n), dtype=np.int64)
    level = shortest
    while level <= bound.max(initial=0) and level <= n // 2:
        starts = np.flatnonzero(bound >= level)
        starts = starts[starts + level <= n]
        repeated = np.zeros(n, dtype=bool)
        repeated[starts[_has_twin(hasher(starts, level))]] = True
        run = _true_run_lengths(repeated)
        bound = np.minimum(bound, np.where(run > 0, run + level - 1, level - 1))
        level *= 8
    return bound


def _has_twin(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    same_as_next = np.zeros(len(values), dtype=bool)
    same_as_next[:-1] = sorted_values[1:] == sorted_values[:-1]
    twin = same_as_next.copy()
    twin[1:] |= same_as_next[:-1]
    result = np.empty(len(values), dtype=bool)
    result[order] = twin
    return result


def _true_run_lengths(flags: np.ndarray) -> np.ndarray:
    """``run[i]`` = how many consecutive True values start at ``i``."""
    n = len(flags)
    index = np.arange(n)
    next_false = np.where(flags, n, index)
    next_false = np.minimum.accumulate(next_false[::-1])[::-1]
    return next_false - index


def _choose_windows(
    codes: np.ndarray,
    hasher: _WindowHasher,
    starts: np.ndarray,
    length: int,
    ref_cost: int,
    def_cost: int,
) -> Repeats:
    if len(starts) < 2:
        return _no_repeats(length)
    hashes = hasher(starts, length)
    order = np.argsort(hashes, kind="stable")  # starts ascend, so ties stay in position order
    hashes, positions = hashes[order], starts[order]
    new_group = np.ones(len(hashes), dtype=bool)
    new_group[1:] = hashes[1:] != hashes[:-1]
    group = np.cumsum(new_group) - 1

    # Within a group, step by `length` along chains of overlapping windows ("aaaa": "aa"+"aa").
    keep = _tiles_chain(positions, length, breaks=new_group)
    positions, group = positions[keep], group[keep]
    positions, group = _drop_unprofitable(positions, group, length, ref_cost, def_cost)
    if not len(positions):
        return _no_repeats(length)

    # Still grouped: each group's first use (its leader) opens its segment.
    opens = np.ones(len(group), dtype=bool)
    opens[1:] = group[1:] != group[:-1]
    leader_position = np.zeros(group.max() + 1, dtype=np.int64)
    leader_position[group[opens]] = positions[opens]

    # Across groups: sorted by position, resolve overlaps in favour of the higher gain.
    by_position = np.argsort(positions, kind="stable")
    positions, group = positions[by_position], group[by_position]
    if (np.diff(positions) >= length).all():  # no overlaps across groups to resolve
        return _profitable_verified(codes, positions, group, length, ref_cost, def_cost)
    gain = _gain(np.bincount(group), length, ref_cost, def_cost)
    # Priority is per group, so a group wins or loses with all its uses together: higher gain
    # first; among equals, groups whose first use lies a multiple of `length` past the start of
    # its chain of overlapping windows (such groups tile repeated regions); then the earlier one.
    # Windows of one group never overlap, so equal priorities never collide.
    n = len(codes) + 1
    leader = np.searchsorted(positions, leader_position[group])
    tiles = _tiles_chain(positions, length)[leader].astype(np.int64)
    priority = (gain[group] * 2 + tiles) * n + (n - positions[leader])
    chosen = np.zeros(len(positions), dtype=bool)
    alive = np.ones(len(positions), dtype=bool)
    for _ in range(_ROUNDS):
        live = np.flatnonzero(alive)
        if not len(live):
            break
        winners = live[_is_local_maximum(positions[live], priority[live], length)]
        chosen[winners] = True
        alive[winners] = False
        alive &= ~_overlaps_any(positions, positions[winners], length)
    return _profitable_verified(codes, positions[chosen], group[chosen], length, ref_cost, def_cost)


def _profitable_verified(
    codes: np.ndarray,
    positions: np.ndarray,
    group: np.ndarray,
    length: int,
    ref_cost: int,
    def_cost: int,
) -> Repeats:
    positions, group = _drop_unprofitable(positions, group, length, ref_cost, def_cost)
    positions, group = _verified(codes, positions, group, length)
    positions, group = _drop_unprofitable(positions, group, length, ref_cost, def_cost)
    _, dense = np.unique(group, return_inverse=True)
    return Repeats(length, positions, dense.reshape(-1))


def _no_repeats(length: int) -> Repeats:
    empty = np.zeros(0, dtype=np.int64)
    return Repeats(length, empty, empty)


def _gain(uses: np.ndarray | int, length: int, ref_cost: int, def_cost: int) -> np.ndarray:
    return np.asarray(length * uses - (def_cost + length + ref_cost * uses))


def _drop_unprofitable(
    positions: np.ndarray, group: np.ndarray, length: int, ref_cost: int, def_cost: int
) -> tuple[np.ndarray, np.ndarray]:
    if not len(group):
        return positions, group
    uses = np.bincount(group)
    worth = _gain(uses, length, ref_cost, def_cost)[group] > 0
    return positions[worth], group[worth]


def _verified(
    codes: np.ndarray, positions: np.ndarray, group: np.ndarray, length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Keep the uses equal symbol by symbol to their group's first use (hash collisions out)."""
    if not len(positions):
        return positions, group
    order = np.lexsort((positions, group))
    positions, group = positions[order], group[order]
    windows = codes[positions[:, None] + np.arange(length)]
    first = np.ones(len(group), dtype=bool)
    first[1:] = group[1:] != group[:-1]
    representative = np.maximum.accumulate(np.where(first, np.arange(len(group)), 0))
    equal = (windows == windows[representative]).all(axis=1)
    return positions[equal], group[equal]


def _tiles_chain(
    positions: np.ndarray, length: int, breaks: np.ndarray | None = None
) -> np.ndarray:
    """Whether each window start lies a multiple of ``length`` past the start of its chain.

    A chain is a run of consecutive (ascending) starts less than ``length`` apart, also cut
    wherever ``breaks`` is True. The windows that pass tile their chain without overlapping.
    """
    chain_start = np.ones(len(positions), dtype=bool)
    chain_start[1:] = positions[1:] - positions[:-1] >= length
    if breaks is not None:
        chain_start |= breaks
    anchor = positions[np.maximum.accumulate(np.where(chain_start, np.arange(len(positions)), 0))]
    return (positions - anchor) % length == 0


def _overlaps_any(positions: np.ndarray, chosen: np.ndarray, length: int) -> np.ndarray:
    """Whether each window (same ``length``) overlaps one of the sorted ``chosen`` windows."""
    if not len(chosen):
        return np.zeros(len(positions), dtype=bool)
    index = np.searchsorted(chosen, positions)
    right = chosen[np.minimum(index, len(chosen) - 1)]
    left = chosen[np.maximum(index - 1, 0)]
    return ((index < len(chosen)) & (right - positions < length)) | (
        (index > 0) & (positions - left < length)
    )


def _is_local_maximum(positions: np.ndarray, priority: np.ndarray, length: int) -> np.ndarray:
    """Whether each window's priority is the highest among the windows overlapping it."""
    low = np.searchsorted(positions, positions - length + 1, side="left")
    high = np.searchsorted(positions, positions + length - 1, side="right")
    padded = np.concatenate([priority, [priority.min(initial=0)]])
    bounds = np.empty(2 * len(positions), dtype=np.int64)
    bounds[0::2], bounds[1::2] = low, high
    range_max = np.maximum.reduceat(padded, bounds)[0::2]
    return priority == range_max
