"""frame_indices: uniform = segment centres, rand = one frame per segment, short videos repeat."""
import numpy as np
import pytest

from vop.data.frame_sampling import frame_indices


@pytest.mark.parametrize(
    "num_frames, count, expected",
    [
        (12, 12, list(range(12))),  # one frame per segment
        (36, 12, [3 * i + 1 for i in range(12)]),  # segments of 3: the exact middle frame
        (24, 12, [2 * i + 1 for i in range(12)]),  # segments of 2: centre time 2i+1 -> frame 2i+1
        (10, 4, [1, 3, 6, 8]),  # L = 2.5: floor(1.25), floor(3.75), floor(6.25), floor(8.75)
        (100, 1, [50]),
        (1, 3, [0, 0, 0]),
    ],
)
def test_uniform_takes_segment_centres(num_frames: int, count: int, expected: list[int]) -> None:
    idx = frame_indices(num_frames, count, "uniform")
    assert idx.dtype == np.int64 and idx.shape == (count,)
    assert idx.tolist() == expected


def test_uniform_matches_centre_formula_for_many_lengths() -> None:
    for n in range(1, 400):
        for t in (1, 5, 12, 32):
            centres = np.floor((np.arange(t) + 0.5) * n / t).astype(np.int64)
            assert np.array_equal(frame_indices(n, t, "uniform"), centres), (n, t)


@pytest.mark.parametrize("num_frames", [1, 5, 11, 12, 13, 30, 1001])
def test_rand_picks_one_frame_inside_each_segment(num_frames: int) -> None:
    rng = np.random.default_rng(0)
    count = 12
    seg = num_frames / count
    lo = np.floor(np.arange(count) * seg)
    hi = np.ceil((np.arange(count) + 1) * seg) - 1  # last frame overlapping the segment
    for _ in range(200):
        idx = frame_indices(num_frames, count, "rand", rng)
        assert idx.dtype == np.int64 and idx.shape == (count,)
        assert np.all(idx >= lo) and np.all(idx <= hi)
        assert np.all(np.diff(idx) >= 0) and idx.min() >= 0 and idx.max() < num_frames


def test_rand_covers_every_frame_of_a_segment() -> None:
    rng = np.random.default_rng(1)
    seen = np.stack([frame_indices(48, 12, "rand", rng) for _ in range(400)])  # [400, 12]
    for i in range(12):  # segments of 4 frames: each should be hit, roughly equally
        counts = np.bincount(seen[:, i] - 4 * i, minlength=4)
        assert counts.shape == (4,) and counts.min() > 60


def test_rand_is_reproducible_with_the_same_seed() -> None:
    a = frame_indices(300, 12, "rand", np.random.default_rng(7))
    b = frame_indices(300, 12, "rand", np.random.default_rng(7))
    assert np.array_equal(a, b)


@pytest.mark.parametrize("mode", ["uniform", "rand"])
@pytest.mark.parametrize("num_frames", [1, 2, 3, 7, 11])
def test_short_videos_repeat_frames(mode: str, num_frames: int) -> None:
    idx = frame_indices(num_frames, 12, mode, np.random.default_rng(0))
    assert idx.shape == (12,)
    assert idx.min() >= 0 and idx.max() < num_frames and np.all(np.diff(idx) >= 0)
    if mode == "uniform":  # every frame still shows up
        assert set(idx.tolist()) == set(range(num_frames))


def test_unknown_mode_names_option_and_allowed_values() -> None:
    with pytest.raises(ValueError, match=r"'middle'.*uniform.*rand"):
        frame_indices(10, 4, "middle")


@pytest.mark.parametrize("num_frames", [0, -3])
def test_non_positive_num_frames_is_an_error(num_frames: int) -> None:
    with pytest.raises(ValueError, match="num_frames"):
        frame_indices(num_frames, 4, "uniform")


def test_bad_count_and_missing_rng_are_errors() -> None:
    with pytest.raises(ValueError, match="count"):
        frame_indices(10, 0, "uniform")
    with pytest.raises(ValueError, match="rng"):
        frame_indices(10, 4, "rand")


def _xpool_reference(vlen: int, num_frames: int, sample: str, choice) -> list[int]:
    """X-Pool's get_valid_frames index rule, restated: truncated linspace edges, (start, end - 1) ranges."""
    acc = min(num_frames, vlen)
    edges = [int(x) for x in np.linspace(0, vlen, acc + 1)]
    ranges = [(edges[i], edges[i + 1] - 1) for i in range(acc)]
    picked = [choice(range(a, b)) for a, b in ranges] if sample == "rand" else [(a + b) // 2 for a, b in ranges]
    return picked + [picked[-1]] * (num_frames - len(picked))


@pytest.mark.parametrize("vlen", [1, 5, 12, 13, 24, 37, 100, 325])
def test_xpool_uniform_is_xpools_rule(vlen: int) -> None:
    assert frame_indices(vlen, 12, "xpool_uniform").tolist() == _xpool_reference(vlen, 12, "uniform", None)
    if vlen == 24:  # segments of 2: X-Pool takes the lower middle frame, "uniform" the upper one
        assert frame_indices(24, 12, "xpool_uniform").tolist() == [2 * i for i in range(12)]


@pytest.mark.parametrize("vlen", [30, 100, 325])
def test_xpool_rand_draws_from_xpools_ranges(vlen: int) -> None:
    rng = np.random.default_rng(0)
    edges = np.linspace(0, vlen, 13).astype(int)
    seen = set()
    for _ in range(300):
        idx = frame_indices(vlen, 12, "xpool_rand", rng)
        assert ((idx >= edges[:-1]) & (idx <= edges[1:] - 2)).all()  # range(start, end - 1)
        seen.update(zip(range(12), idx.tolist()))
    allowed = {(i, f) for i in range(12) for f in range(edges[i], edges[i + 1] - 1)}
    assert seen == allowed  # every frame X-Pool could pick, and only those
