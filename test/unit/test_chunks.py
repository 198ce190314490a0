"""ChunkScheduler: which chunk row is the base action, late/short/invalid chunks, ensembling."""
import numpy as np
import pytest

from resrl.arbiter import ChunkConfig, ChunkScheduler
from resrl.arbiter.chunks import STATUSES


def chunk(k: int, rows: int = 4, dim: int = 7) -> np.ndarray:
    """Row r of chunk k is 10*k + r in every column, so each (chunk, row) is recognisable."""
    return np.repeat((10.0 * k + np.arange(rows))[:, None], dim, axis=1)


def sched(**kw) -> ChunkScheduler:
    return ChunkScheduler(ChunkConfig(**{"horizon": 4, "execute_steps": 4, **kw}))


def test_on_time_chunks_reproduce_a_t_mod_h():
    s = sched()
    for t in range(12):
        if t % 4 == 0:
            assert s.push(t // 4, t, chunk(t // 4), received_step=t)
        action, info = s.action_at(t)
        np.testing.assert_array_equal(action, chunk(t // 4)[t % 4])
        assert (info.status, info.chunk_id, info.row, info.late_by) == ("ok", t // 4, t % 4, 0)
        assert info.n_ensembled == 1 and info.hold_steps == 0 and info.status in STATUSES


def test_late_chunk_tail_then_switch_skipping_elapsed_rows():
    s = sched(horizon=8, execute_steps=4)
    s.push(0, 0, chunk(0, 8), received_step=0)
    statuses = [s.action_at(t)[1].status for t in range(6)]
    assert statuses == ["ok"] * 4 + ["late_tail"] * 2          # successor due at 4, not there yet
    np.testing.assert_array_equal(s.action_at(5)[0], chunk(0, 8)[5])
    s.push(1, 4, chunk(1, 8), received_step=6)                  # planned for step 4, arrives at 6
    action, info = s.action_at(6)
    np.testing.assert_array_equal(action, chunk(1, 8)[2])       # rows for steps 4, 5 skipped
    assert (info.status, info.chunk_id, info.row, info.late_by) == ("ok", 1, 2, 2)


def test_missing_successor_tail_then_hold_and_stall():
    s = sched(horizon=8, execute_steps=4, max_hold_steps=2)
    s.push(0, 0, chunk(0, 8), received_step=0)
    infos = [s.action_at(t)[1] for t in range(11)]
    assert [i.status for i in infos] == ["ok"] * 4 + ["late_tail"] * 4 + ["hold"] * 3
    assert s.action_at(8)[0] is None
    assert [i.hold_steps for i in infos[8:]] == [1, 2, 3]
    assert [i.stalled for i in infos[8:]] == [False, False, True]
    s.push(1, 11, chunk(1), received_step=11)                   # recovery resets the counter
    _, info = s.action_at(11)
    assert info.status == "ok" and info.hold_steps == 0 and not info.stalled


def test_short_chunk_runs_its_rows_then_holds_without_resurrecting_older_chunk():
    s = sched(horizon=8, execute_steps=8)
    s.push(0, 0, chunk(0, 8), received_step=0)
    s.push(1, 2, chunk(1, 3), received_step=2)                  # 3 rows where 8 were expected
    got = [s.action_at(t) for t in range(2, 6)]
    np.testing.assert_array_equal(np.array([a for a, _ in got[:3]]), chunk(1, 3))
    action, info = got[3]
    assert action is None and (info.status, info.chunk_id, info.row) == ("hold", 1, 3)


def test_chunk_arriving_after_all_its_rows_elapsed_holds():
    s = sched()
    s.push(0, 0, chunk(0), received_step=0)
    s.push(1, 4, chunk(1), received_step=9)                     # rows for steps 4..7, now t = 9
    action, info = s.action_at(9)
    assert action is None and (info.status, info.chunk_id, info.late_by) == ("hold", 1, 5)


def test_no_chunk_before_first_start():
    s = sched()
    assert s.action_at(0)[1].status == "no_chunk"
    s.push(0, 5, chunk(0), received_step=0)                     # pending: starts at 5
    action, info = s.action_at(3)
    assert action is None and info.status == "no_chunk" and info.chunk_id is None
    assert s.action_at(5)[1].status == "ok"


def test_out_of_order_and_repeated_ids_are_ignored():
    s = sched()
    assert s.push(2, 0, chunk(2), received_step=0)
    assert not s.push(1, 1, chunk(1), received_step=1)
    assert not s.push(2, 1, chunk(5), received_step=1)
    action, info = s.action_at(1)
    np.testing.assert_array_equal(action, chunk(2)[1])
    assert info.chunk_id == 2 and s.latest_chunk_id == 2


@pytest.mark.parametrize("actions, match", [
    (np.where(np.arange(4)[:, None] == 1, np.nan, chunk(3)), r"chunk 3: non-finite values in rows \[1\]"),
    (chunk(3, dim=6), r"chunk 3: expected an \(H, 7\) array, got shape \(4, 6\)"),
    (chunk(3)[0], r"chunk 3: expected an \(H, 7\)"),
    (chunk(3, rows=5), r"chunk 3: 5 rows, expected 1..4"),
    (np.zeros((0, 7)), r"chunk 3: 0 rows"),
    ([["a"] * 7], r"chunk 3: actions are not numeric"),
])
def test_invalid_chunk_is_rejected_and_the_old_one_stays(actions, match):
    s = sched()
    s.push(2, 0, chunk(2), received_step=0)
    with pytest.raises(ValueError, match=match):
        s.push(3, 1, actions, received_step=1)
    action, info = s.action_at(1)
    np.testing.assert_array_equal(action, chunk(2)[1])
    assert info.chunk_id == 2
    assert s.push(3, 1, chunk(3), received_step=1)              # the rejected id was not consumed


def test_bad_step_numbers_are_rejected():
    s = sched()
    with pytest.raises(ValueError, match="chunk 0: start_step must be >= 0"):
        s.push(0, -1, chunk(0), received_step=0)
    with pytest.raises(ValueError, match="received_step must be an integer"):
        s.push(0, 0, chunk(0), received_step=0.5)


def test_pushed_chunk_is_copied():
    s = sched()
    a = chunk(0).astype(np.float32)   # already the stored dtype: no implicit conversion copy
    s.push(0, 0, a, received_step=0)
    a[:] = 99.0
    np.testing.assert_array_equal(s.action_at(0)[0], chunk(0)[0])


def test_temporal_ensemble_hand_computed():
    # Chunks 0, 1, 2 start at 0, 1, 2. With m = 0.5, oldest first: w = [1, e^-0.5, e^-1].
    s = sched(temporal_ensemble=True, ensemble_m=0.5)
    for k in range(3):
        s.push(k, k, chunk(k), received_step=k)
    # t=1: chunk 0 row 1 (=1), chunk 1 row 0 (=10): (1 + 10 e^-0.5) / (1 + e^-0.5)
    action, info = s.action_at(1)
    np.testing.assert_allclose(action, 4.397866, rtol=1e-6)
    assert info.chunk_id == 1 and info.n_ensembled == 2
    # t=2: rows 2, 11, 20: (2 + 11 e^-0.5 + 20 e^-1) / (1 + e^-0.5 + e^-1)
    action, info = s.action_at(2)
    np.testing.assert_allclose(action, 8.118590, rtol=1e-6)
    assert (info.chunk_id, info.row, info.n_ensembled) == (2, 0, 3)
    # t=4: chunk 0 has ended; rows 13 (chunk 1) and 22 (chunk 2) with weights [1, e^-0.5]
    action, info = s.action_at(4)
    np.testing.assert_allclose(action, 16.397866, rtol=1e-6)
    assert info.n_ensembled == 2


def test_ensemble_m_zero_is_a_plain_mean_and_off_by_default():
    s = sched(temporal_ensemble=True, ensemble_m=0.0)
    for k in range(3):
        s.push(k, k, chunk(k), received_step=k)
    np.testing.assert_allclose(s.action_at(2)[0], (2 + 11 + 20) / 3, rtol=1e-6)
    plain = sched()
    for k in range(3):
        plain.push(k, k, chunk(k), received_step=k)
    action, info = plain.action_at(2)
    np.testing.assert_array_equal(action, chunk(2)[0])
    assert info.n_ensembled == 1


def test_needs_prefetch():
    s = sched(horizon=8, execute_steps=8)
    assert s.needs_prefetch(0, lead_steps=2)                    # nothing at all
    s.push(0, 0, chunk(0, 8), received_step=0)
    assert not s.needs_prefetch(5, lead_steps=2)                # rows 5, 6, 7 left
    assert s.needs_prefetch(6, lead_steps=2)                    # rows 6, 7 left
    s.push(1, 8, chunk(1, 8), received_step=7)
    assert not s.needs_prefetch(7, lead_steps=2)                # successor already pending
    assert s.needs_prefetch(20, lead_steps=2)                   # all run out


def test_reset_forgets_chunks_and_allows_ids_to_restart():
    s = sched()
    s.push(5, 0, chunk(5), received_step=0)
    s.reset()
    assert s.action_at(0)[1].status == "no_chunk"
    assert s.push(0, 0, chunk(0), received_step=0)


def test_config_validation():
    with pytest.raises(ValueError, match="execute_steps"):
        ChunkConfig(horizon=4, execute_steps=8)
    with pytest.raises(ValueError, match="horizon"):
        ChunkConfig(horizon=0)
