"""Face-verification pairs: who counts as a person, which people are held out, and "same person or not?" pairs.

* `person_ids`: a data set's identities (CelebA's identity file, LFW's folders) or, for SynthFaces, the person of
  each image derived from its factors (core.data.synthfaces.IDENTITY_FACTORS).
* `split_people`: training people and held-out people. Where the data set's splits are identity-disjoint (CelebA's
  official partition, LFW) the held-out people are those of the val/test splits; where every person is in every
  split (SynthFaces, a random CelebA split) a seeded share of the people is held out instead, and the result says
  that the encoder saw other images of them.
* `make_folds`: person-disjoint folds (no person in two folds), each with equally many same-person and
  different-person pairs of held-out images.
* `read_lfw_pairs` / `lfw_pairs`: LFW's official View 2 `pairs.txt` (10 folds of 300 same + 300 different pairs).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.data import DataError, Dataset
from core.data.base import read_text
from core.metrics.probes import identity_disjoint

PAIRS_FILE = "pairs.txt"
MAX_PAIRS_FILE_BYTES = 5_000_000  # View 2's pairs.txt is ~100 kB
MAX_FOLDS = 100
MAX_PAIRS_PER_FOLD = 100_000


@dataclass(frozen=True)
class Pairs:
    """Verification pairs of data set images: a[i] and b[i] are image indices, same[i] says whether they show one
    person, fold[i] is the pair's fold."""

    a: np.ndarray  # (P,) int64
    b: np.ndarray  # (P,) int64
    same: np.ndarray  # (P,) bool
    fold: np.ndarray  # (P,) int64
    folds: int

    def __len__(self) -> int:
        return len(self.a)

    @property
    def images(self) -> np.ndarray:
        """Sorted unique image indices used by any pair."""
        return np.unique(np.concatenate([self.a, self.b]))

    def counts(self) -> list[dict]:
        """Per fold: its same-person and different-person pair counts."""
        return [{"same": int((self.same & (self.fold == k)).sum()),
                 "different": int((~self.same & (self.fold == k)).sum())} for k in range(self.folds)]


@dataclass(frozen=True)
class PeopleSplit:
    """Who trains the comparisons (whitening, learned comparison, baseline CNN) and who is only ever tested."""

    training_people: np.ndarray  # sorted unique person ids
    heldout_people: np.ndarray  # sorted unique person ids, disjoint from training_people
    how: str  # "by split" or "by person"
    encoder_saw_heldout: bool  # True when held-out people have images in the split the run trained on

    def describe(self) -> str:
        """How held-out people were chosen, in a sentence for the report and the page."""
        if self.how == "by split":
            return ("held-out people are those of the val/test splits; the data set's splits are identity-disjoint, "
                    "so the encoder never saw them")
        return ("every person is in every split (the split is per image), so a seeded share of the people is held "
                "out: the comparisons and the baseline CNN never see them, but the encoder saw their training-split "
                "images (never the val/test images that the pairs use)")


def person_ids(dataset: Dataset) -> np.ndarray | None:
    """(N,) int64 person id of every image, or None when the data set has no notion of a person."""
    if dataset.identities is not None:
        return np.asarray(dataset.identities, dtype=np.int64)
    derive = getattr(dataset, "identities_from_factors", None)
    if derive is not None:
        return derive(dataset.index_to_factors(np.arange(len(dataset))))
    return None


def split_people(persons: np.ndarray, split: np.ndarray, seed: int, heldout_fraction: float = 0.2,
                 min_heldout: int = 20) -> PeopleSplit:
    """Training and held-out people of a data set with per-image `persons` and `split` (0 train, 1 val, 2 test).

    Held-out people are the val/test people who have no training image (core.metrics.probes.identity_disjoint);
    when there are fewer than `min_heldout` of them (the splits share people), `heldout_fraction` of all people,
    drawn with `seed`, are held out instead."""
    train = split == 0
    keep = identity_disjoint(persons[train], persons[~train])
    disjoint = np.unique(persons[~train][keep])
    if len(disjoint) >= min_heldout:
        return PeopleSplit(np.unique(persons[train]), disjoint, "by split", encoder_saw_heldout=False)
    people = np.unique(persons)
    count = int(round(heldout_fraction * len(people)))
    if count < 2 or count >= len(people):
        raise DataError(f"cannot hold out {heldout_fraction:.0%} of {len(people)} people for verification: need at "
                        "least 2 held-out and 1 training person")
    chosen = np.random.default_rng([seed, 7]).permutation(people)[:count]
    heldout = np.sort(chosen)
    return PeopleSplit(np.setdiff1d(people, heldout), heldout, "by person", encoder_saw_heldout=True)


def make_folds(index: np.ndarray, persons: np.ndarray, folds: int, pairs_per_fold: int, seed: int) -> Pairs:
    """Person-disjoint folds of images `index` (with people `persons`): the people are shuffled and dealt to the
    folds in turn, and each fold gets min(pairs_per_fold, its possible same-person pairs) same-person pairs, drawn
    uniformly from all of them, and exactly as many distinct different-person pairs."""
    index, persons = np.asarray(index, np.int64), np.asarray(persons, np.int64)
    people = np.unique(persons)
    if folds < 2 or len(people) < 2 * folds:
        raise DataError(f"{len(people)} held-out people cannot make {folds} folds of at least 2 people each; "
                        "use fewer folds or a data set with more people")
    rng = np.random.default_rng([seed, 11])
    fold_of = dict(zip(rng.permutation(people).tolist(), np.arange(len(people)) % folds))
    image_fold = np.array([fold_of[p] for p in persons.tolist()], dtype=np.int64)
    parts = []
    for k in range(folds):
        members = np.flatnonzero(image_fold == k)
        same = _same_pairs(members, persons, rng, pairs_per_fold)
        if not len(same):
            raise DataError(f"fold {k + 1} of {folds}: none of its people has two held-out images, so it has no "
                            "same-person pair; use fewer folds")
        different = _different_pairs(members, persons, rng, len(same))
        both = np.concatenate([same, different])
        labels = np.r_[np.ones(len(same), bool), np.zeros(len(different), bool)]
        parts.append((index[both[:, 0]], index[both[:, 1]], labels, np.full(len(both), k)))
    a, b, same, fold = (np.concatenate(column) for column in zip(*parts))
    return Pairs(a, b, same, fold, folds)


def sample_pairs(persons: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Up to `n` same-person and `n` different-person pairs of rows of `persons` (positions i, j and `same`),
    drawn with replacement: for training comparisons and calibrating distances, not for test folds."""
    persons = np.asarray(persons)
    order = np.argsort(persons, kind="stable")
    people, starts, sizes = np.unique(persons[order], return_index=True, return_counts=True)
    multi = np.flatnonzero(sizes >= 2)
    if len(people) < 2 or not len(multi):
        raise DataError(f"{len(people)} people, {len(multi)} of them with two images: too few to draw "
                        "same-person and different-person pairs")
    who = rng.choice(multi, n)
    first = rng.integers(0, sizes[who])
    second = (first + rng.integers(1, sizes[who])) % sizes[who]  # another image of the same person
    si, sj = order[starts[who] + first], order[starts[who] + second]
    di, dj = rng.integers(0, len(persons), (2, 4 * n))
    keep = persons[di] != persons[dj]
    di, dj = di[keep][:n], dj[keep][:n]
    return np.r_[si, di], np.r_[sj, dj], np.r_[np.ones(len(si), bool), np.zeros(len(di), bool)]


def _same_pairs(members: np.ndarray, persons: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """(m, 2) positions: up to n distinct same-person pairs among `members`, uniform over all of them."""
    candidates = []
    for p in np.unique(persons[members]):
        mine = members[persons[members] == p]
        i, j = np.triu_indices(len(mine), k=1)
        candidates.append(np.stack([mine[i], mine[j]], axis=1))
    candidates = np.concatenate(candidates) if candidates else np.zeros((0, 2), np.int64)
    return candidates[np.sort(rng.permutation(len(candidates))[:n])]


def _different_pairs(members: np.ndarray, persons: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 2) positions: n distinct unordered different-person pairs among `members` (there are always enough:
    with two or more people a fold has more different-person pairs than same-person ones, or all of them)."""
    found: set[tuple[int, int]] = set()
    for _ in range(100):
        i, j = rng.choice(members, (2, 4 * n))
        for x, y in zip(i.tolist(), j.tolist()):
            if persons[x] != persons[y] and len(found) < n:
                found.add((min(x, y), max(x, y)))
        if len(found) >= n:
            break
    else:  # a tiny fold: enumerate every different-person pair
        i, j = np.triu_indices(len(members), k=1)
        pairs = [(members[x], members[y]) for x, y in zip(i, j) if persons[members[x]] != persons[members[y]]]
        found = {pairs[k] for k in rng.permutation(len(pairs))[:n]}
    return np.array(sorted(found), dtype=np.int64).reshape(-1, 2)


# --- LFW's official pairs ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PairLine:
    """One line of pairs.txt: (person, image number) twice, and whether they are one person."""

    first: tuple[str, int]
    second: tuple[str, int]
    same: bool
    fold: int


def find_lfw_pairs(dataset: Dataset) -> Path | None:
    """LFW's pairs.txt in the image folder or the one above it (where lfw_attributes.txt also lives), or None."""
    root = getattr(dataset, "root", None)
    if dataset.name != "lfw" or root is None:
        return None
    for folder in (Path(root), Path(root).parent):
        if (folder / PAIRS_FILE).is_file():
            return folder / PAIRS_FILE
    return None


def read_lfw_pairs(path: str | Path) -> list[PairLine]:
    """The pairs of LFW's View 2 pairs.txt: a header `folds n` (10 300), then per fold n lines `name i j` (same
    person) and n lines `name1 i name2 j` (different people). Bounded (size, folds, pairs); anything else raises
    DataError naming the file and the line."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise DataError(f"{path}: cannot read LFW pairs file ({e.strerror})") from None
    if size > MAX_PAIRS_FILE_BYTES:
        raise DataError(f"{path}: {size:,} bytes is far more than LFW's pairs.txt (~100 kB); is it the right file?")
    lines = [(number, line.split()) for number, line in enumerate(read_text(path, "LFW's pairs.txt").splitlines(), 1)]
    lines = [(number, fields) for number, fields in lines if fields]
    hint = "expected LFW's View 2 pairs.txt; download it again"
    if not lines:
        raise DataError(f"{path} is empty; {hint}")
    number, header = lines[0]
    if len(header) == 1 and header[0].isdigit():
        raise DataError(f"{path}, line {number}: a one-number header is View 1 (pairsDevTrain.txt / pairsDevTest.txt); "
                        f"{hint}")
    if len(header) != 2 or not all(f.isascii() and f.isdigit() for f in header):
        raise DataError(f"{path}, line {number}: expected a header 'folds pairs' such as '10 300', got "
                        f"{' '.join(header)[:80]!r}; {hint}")
    folds, n = int(header[0]), int(header[1])
    if not (1 <= folds <= MAX_FOLDS and 1 <= n <= MAX_PAIRS_PER_FOLD):
        raise DataError(f"{path}, line {number}: {folds} folds of {n} pairs is out of range (1-{MAX_FOLDS} folds, "
                        f"1-{MAX_PAIRS_PER_FOLD} pairs); {hint}")
    body = lines[1:]
    if len(body) != 2 * folds * n:
        raise DataError(f"{path}: the header announces {folds} folds of {n} same + {n} different pairs "
                        f"({2 * folds * n} lines) but {len(body)} pair lines follow; {hint}")
    pairs = []
    for k, (number, fields) in enumerate(body):
        fold, same = k // (2 * n), k % (2 * n) < n
        if same and len(fields) == 3:
            first, second = (fields[0], fields[1]), (fields[0], fields[2])
        elif not same and len(fields) == 4:
            first, second = (fields[0], fields[1]), (fields[2], fields[3])
        else:
            shape = "'name i j' (same person)" if same else "'name1 i name2 j' (different people)"
            raise DataError(f"{path}, line {number}: expected {shape} in fold {fold + 1}, got "
                            f"{' '.join(fields)[:80]!r}; {hint}")
        pairs.append(PairLine(_image(path, number, *first), _image(path, number, *second), same, fold))
    return pairs


def _image(path: Path, number: int, name: str, text: str) -> tuple[str, int]:
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= 100_000):
        raise DataError(f"{path}, line {number}: image number {text[:20]!r} of {name[:60]!r} is not a positive "
                        "integer; expected LFW's View 2 pairs.txt")
    return name, int(text)


def lfw_pairs(dataset: Dataset, lines: list[PairLine]) -> tuple[Pairs, int]:
    """The pairs of `lines` as data set image indices, and how many were dropped because an image is not in
    `dataset` (a partial download); DataError when none is left."""
    row_of = {file: i for i, file in enumerate(getattr(dataset, "files", []))}

    def index(image: tuple[str, int]) -> int:
        name, number = image
        return row_of.get(f"{name}/{name}_{number:04d}.jpg", -1)

    rows = [(index(p.first), index(p.second), p.same, p.fold) for p in lines]
    kept = [r for r in rows if r[0] >= 0 and r[1] >= 0]
    if not kept:
        raise DataError(f"none of the {len(rows)} pairs of {PAIRS_FILE} names images of this LFW folder; are they "
                        "from the same download?")
    a, b, same, fold = (np.array(column) for column in zip(*kept))
    folds = max(p.fold for p in lines) + 1
    return Pairs(a.astype(np.int64), b.astype(np.int64), same.astype(bool), fold.astype(np.int64), folds), \
        len(rows) - len(kept)
