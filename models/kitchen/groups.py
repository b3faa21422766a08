"""Which photos are copies or neighbours of one another, so a split never puts one side of a
pair in training and the other in the held-out set (issue 23).

Three kinds of group, all read from file names alone:

- **Source photo.** Roboflow exports name each image `<split>_<source>_jpg.rf.<hash>.jpg`, and
  the publisher's augmentation stored rotated, flipped or re-exposed copies of one source under
  several hashes, sometimes under both the `train_` and the `valid_` prefix. The group is the part
  before `.rf.` with the prefix stripped (`train_408_jpg.rf.ca70….jpg` -> `408_jpg`).
- **Source video.** The fire set's `<clip>_mp4-<frame>_jpg…` are frames of one clip: the group is
  the clip (`fire2_mp4`), whatever the frame.
- **Run of neighbouring frames.** The fire set's `img_<n>_jpg…` (and `img_<n>--2-_jpg…`, a second
  copy of frame n) are numbered frames of unnamed clips. Frames whose numbers differ by at most
  FRAME_GAP from the previous one are one run, and a run is one group.

Anything else (the mask photos, `maksssksksss<n>.jpg`) is its own source.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence

# Why 30, not the 5 first suggested: looking at the frames, the fire set's numbering comes back
# to one scene after skips of 6 to 26 numbers (the CH3 fire-fighter alley at 424, 471, 488, 519
# and 524-543; the restaurant kitchen at 749 and 775; the office at 225 and 240; the clothes shop
# at 900 and 906), so a gap of 5 would leave copies of a scene on both sides. Between scenes the
# numbers jump 31 to 91, so 30 still separates them: 7 runs of numbered frames. One residue the
# numbers cannot catch: the stairwell of 50-118 appears again at 200-206 (a jump of 82).
FRAME_GAP = 30

_RF = re.compile(r"^(?P<source>.+?)\.rf\.[0-9A-Za-z]+$")
_PREFIX = re.compile(r"^(?:train|valid|test)_")
_VIDEO = re.compile(r"^(?P<clip>.+?_mp4)-\d+")
_FRAME = re.compile(r"^img_(?P<n>\d+)(?:--\d+-)?_(?:jpe?g|png)$")


def source_of(file_name: str) -> str:
    """The source photo of one file: the stem before `.rf.`, without the export's split prefix."""
    stem = file_name.rsplit(".", 1)[0] if "." in file_name else file_name
    match = _RF.match(stem)
    if not match:
        return stem  # not a Roboflow export name: the file is its own source
    return _PREFIX.sub("", match["source"], count=1)


def group_keys(file_names: Iterable[str], gap: int = FRAME_GAP) -> dict[str, str]:
    """Each file name -> the key of its group. The whole set is needed at once: a run of frames
    is only known from its neighbours."""
    keys: dict[str, str] = {}
    frames: dict[str, int] = {}
    for name in file_names:
        source = source_of(name)
        if video := _VIDEO.match(source):
            keys[name] = f"video:{video['clip']}"
        elif frame := _FRAME.match(source):
            frames[name] = int(frame["n"])
        else:
            keys[name] = f"source:{source}"
    run_start: dict[int, int] = {}
    numbers = sorted(set(frames.values()))
    for i, n in enumerate(numbers):
        run_start[n] = n if i == 0 or n - numbers[i - 1] > gap else run_start[numbers[i - 1]]
    for name, n in frames.items():
        keys[name] = f"frames:{run_start[n]}+"
    return keys


def _unit(seed: int, set_name: str, name: str) -> float:
    digest = hashlib.sha256(f"{seed}:{set_name}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def file_held_out(set_name: str, file_name: str, seed: int, fraction: float) -> bool:
    """The OLD per-file rule (before issue 23), kept to measure what it leaked and which photos
    the shipped model, trained under it, never saw. Never use it to train."""
    return _unit(seed, set_name, file_name) < fraction


def grouped_held_out(set_name: str, file_names: Sequence[str], seed: int, fraction: float) -> set[str]:
    """The file names held out: whole groups, taken in a seeded order until they hold `fraction`
    of the set's photos.

    Order, not a per-group coin: the fire set has only ~17 groups, some of 100 frames, and a coin
    per group would hold out anywhere from 0% to 40% of it. A group is taken when it brings the
    held-out count nearer the target, so one big group cannot overshoot it.

    The order is the old rule's seeded hash of the group's first file name (sorted). Any fixed
    member's name is as random a key as the group's own, but this one puts first exactly the
    groups the old per-file rule held out whole: every mask photo it held out stays held out, and
    so does every cigarette source the shipped model (trained under the old rule) never saw, so
    the shipped model can still be measured on as many unseen photos as exist.
    """
    members: dict[str, list[str]] = {}
    for name, key in group_keys(file_names).items():
        members.setdefault(key, []).append(name)
    order = sorted(members.values(), key=lambda names: (_unit(seed, set_name, min(names)), min(names)))
    target = fraction * len(file_names)
    held: set[str] = set()
    for names in order:
        if abs(len(held) + len(names) - target) < abs(len(held) - target):
            held.update(names)
    return held


def leaked(set_name: str, file_names: Sequence[str], held_out: set[str]) -> set[str]:
    """Held-out file names with a member of their group on the training side."""
    keys = group_keys(file_names)
    trained_groups = {keys[n] for n in file_names if n not in held_out}
    return {n for n in held_out if keys[n] in trained_groups}


def never_trained_by_file_rule(
    set_name: str, file_names: Sequence[str], seed: int, fraction: float
) -> set[str]:
    """File names whose whole group the OLD per-file rule held out: photos a model trained under
    that rule has never seen, not even as an augmented copy or a neighbouring frame."""
    old_held = {n for n in file_names if file_held_out(set_name, n, seed, fraction)}
    return old_held - leaked(set_name, file_names, old_held)
