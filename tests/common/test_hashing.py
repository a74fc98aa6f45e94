import numpy as np

from podtarget.common.hashing import GOLDEN_GAMMA, mix64, splitmix64


def test_splitmix64_matches_the_reference_sequence():
    # splitmix64 seeded with 0 yields 0xE220A8397B1DCDAF, then 0x6E789E6AA1B965F4 (Vigna's reference implementation).
    state = np.array([0], np.uint64)
    assert splitmix64(state)[0] == np.uint64(0xE220A8397B1DCDAF)
    assert splitmix64(state + GOLDEN_GAMMA)[0] == np.uint64(0x6E789E6AA1B965F4)


def test_mix64_is_the_finaliser_that_user_buckets_were_cut_with():
    # Bucket files of committed partitions depend on these values: a change here moves every user to another part.
    assert mix64(np.array([1], np.uint64))[0] == np.uint64(0x5692161D100B05E5)
    values = np.array([0, 1, 2**63, 2**64 - 1], np.uint64)
    assert np.array_equal(splitmix64(values), mix64(values + GOLDEN_GAMMA))


def test_inputs_are_left_untouched():
    values = np.arange(5, dtype=np.uint64)
    mix64(values)
    splitmix64(values)
    assert np.array_equal(values, np.arange(5, dtype=np.uint64))
