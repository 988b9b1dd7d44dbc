"""Hard-cut detection on realistic pans over scikit-image photographs: precision and recall on cuts,
cross fades (not cuts), whip pans and fast pans (not cuts).

Numbers (printed with ``-s``; also in docs/real-footage.md, "Hard cuts"): the pairs of 4 photographs,
cut at 3 pan speeds, cross fades of 4, 8 and 16 frames, whip pans of 1–3 frames at 20–80 px per
frame and steady pans of 8–24 px per frame, at 256×144.
"""
from __future__ import annotations

import itertools

from wan2gp_structure_video.preprocessors.annotators.shot_cuts import CutProbe, pair_evidence

from videogen import PHOTOS, cut_frames, fade_frames, pan_frames, photo, steady_offsets, whip_offsets

SIZE = dict(width=256, height=144)


def _cuts(frames) -> set[int]:
    probe = CutProbe()
    for frame in frames:
        probe.add(frame)
    return set(probe.cuts())


def test_precision_and_recall_on_cuts_fades_whip_and_fast_pans() -> None:
    true_positive = false_negative = false_positive = 0
    for first, second in itertools.permutations(PHOTOS, 2):
        for speed in (0.5, 3.0, 12.0):
            found = _cuts(cut_frames(first, second, 16, 8, speed=speed, **SIZE))
            true_positive += 7 in found
            false_negative += 7 not in found
            false_positive += len(found - {7})
    negatives = 0
    for first, second in itertools.permutations(PHOTOS, 2):
        for length in (4, 8, 16):
            found = _cuts(fade_frames(first, second, 22 + length, range(8, 8 + length), speed=2.0, **SIZE))
            false_positive += len(found)
            negatives += 1
    whip_false = 0
    for name in PHOTOS:
        image = photo(name)
        for burst, speed in itertools.product((1, 2, 3), (20, 40, 80)):
            found = _cuts(pan_frames(image, whip_offsets(16, 2.0, range(8, 8 + burst), speed), **SIZE))
            whip_false += len(found)
            negatives += 1
        for speed in (8, 16, 24):
            false_positive += len(_cuts(pan_frames(image, steady_offsets(12, speed), **SIZE)))
            negatives += 1
    false_positive += whip_false
    precision = true_positive / max(1, true_positive + false_positive)
    recall = true_positive / (true_positive + false_negative)
    print(f"\ncuts: {true_positive} found, {false_negative} missed; {false_positive} false cuts in {negatives} "
          f"clips without a cut ({whip_false} in whip pans); precision {precision:.3f}, recall {recall:.3f}")
    assert recall == 1.0
    assert precision >= 0.95 and whip_false <= 1  # a 1-frame jump by a third of the width looks like a cut


def test_evidence_of_a_cut_a_pan_and_one_fade_step() -> None:
    pan = pan_frames(photo("astronaut"), [0.0, 6.0], **SIZE)
    cut = cut_frames("astronaut", "coffee", 2, 1, **SIZE)
    fade = fade_frames("astronaut", "coffee", 3, range(1, 2), speed=2.0, **SIZE)
    assert pair_evidence(*pan).residual < 0.1 and pair_evidence(*pan).histogram < 0.1
    assert pair_evidence(*cut).residual > 0.5 and pair_evidence(*cut).histogram > 0.5
    assert pair_evidence(fade[0], fade[1]).residual < pair_evidence(*cut).residual / 2


def test_evidence_from_many_threads_at_once_matches_one_thread() -> None:
    """Concurrent builds in one process measure cuts at the same time: each thread has its own DIS
    (one shared instance crashed the process under tests/robustness/test_load.py)."""
    from concurrent.futures import ThreadPoolExecutor

    frames = cut_frames("coffee", "astronaut", 12, 6, width=320, height=192)
    pairs = list(zip(frames, frames[1:]))
    alone = [pair_evidence(a, b) for a, b in pairs]
    with ThreadPoolExecutor(max_workers=6) as pool:
        for _ in range(3):
            together = list(pool.map(lambda pair: pair_evidence(*pair), pairs))
            assert together == alone
