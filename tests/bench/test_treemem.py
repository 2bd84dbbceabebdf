"""The bench's memory cap and peak count pages shared between a run's processes once (PSS), cheaply."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from bench import proc, treemem

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_an_unread_process_counts_its_rss_and_a_read_one_its_pss_plus_growth_since() -> None:
    pss = {1: 30 * MIB, 2: 10 * MIB}
    mem = treemem.TreeMemory(budget_s=10, pss=pss.get, clock=FakeClock())
    assert mem.estimate({1: 50 * MIB, 2: 40 * MIB}) == 90 * MIB
    assert mem.sample({1: 50 * MIB, 2: 40 * MIB}) == 40 * MIB
    # process 2 grew by 5 MiB since its reading: counted as private growth
    assert mem.estimate({1: 50 * MIB, 2: 45 * MIB}) == 45 * MIB
    # a process that shrank keeps its last PSS until it is read again
    assert mem.estimate({1: 20 * MIB, 2: 40 * MIB}) == 40 * MIB


def test_readings_stop_at_the_budget_and_new_processes_are_read_before_old_ones() -> None:
    clock = FakeClock()
    read: list[int] = []

    def pss(pid: int) -> int:
        read.append(pid)
        clock.t += 0.002  # each reading costs 2 ms
        return MIB

    mem = treemem.TreeMemory(budget_s=0.005, max_age_s=1.0, sweep_every_s=float("inf"), pss=pss, clock=clock)
    mem.peak = 10**12  # no new peak, no periodic sweep: only the budget decides what is read
    mem.sample({pid: 4 * MIB for pid in range(1, 6)})
    assert read == [1, 2, 3]  # the third reading crosses 5 ms
    read.clear()
    mem.sample({pid: 4 * MIB for pid in range(1, 7)})
    assert read == [4, 5, 6]  # unread ones; 1-3 are younger than max_age_s
    read.clear()
    clock.t += 2.0
    mem.sample({pid: 4 * MIB for pid in range(1, 7)})
    assert read == [1, 2, 3]  # now the oldest readings are refreshed first


def test_the_peak_comes_from_full_sweeps_spaced_by_their_cost() -> None:
    clock = FakeClock()
    shared = {"n": 1}

    def pss(pid: int) -> int:
        clock.t += 0.001
        return 40 * MIB // shared["n"]  # forks sharing 40 MiB: each one's share shrinks as they multiply

    mem = treemem.TreeMemory(budget_s=0.0015, duty=20, sweep_every_s=2.0, pss=pss, clock=clock)
    rss = {1: 40 * MIB}
    assert mem.sample(rss) == 40 * MIB and mem.peak == 40 * MIB  # first sample: a sweep
    for pid in range(2, 5):  # three forks, one per 10 ms: stale readings overstate the sum
        clock.t += 0.01
        rss[pid] = 40 * MIB
        shared["n"] = pid
        mem.sample(rss)
    assert mem.peak == 40 * MIB  # the sweeps' own figures never exceed the true 40 MiB
    assert mem.peak_rss == 160 * MIB
    clock.t += 1.0
    assert mem.sample(rss) == 40 * MIB  # a sweep again (the estimate passed the peak): exact
    read_before = clock.t
    mem.sample(rss)  # right after a sweep of 4 ms the next waits 80 ms: only the budget's reading
    assert clock.t - read_before <= 0.002


def test_the_cap_is_decided_on_a_full_sweep() -> None:
    clock = FakeClock()
    mem = treemem.TreeMemory(pss=lambda pid: 10 * MIB, clock=clock)
    rss = {pid: 40 * MIB for pid in range(1, 11)}  # ten forks sharing most of their 40 MiB
    mem.sample(rss)
    assert mem.peak == 100 * MIB and mem.peak_rss == 400 * MIB
    rss[11] = 40 * MIB
    assert mem.estimate(rss) == 140 * MIB
    assert not mem.over(rss, 120 * MIB)  # the unread newcomer is read before judging
    assert mem.over(rss, 100 * MIB)


def test_exited_processes_are_forgotten() -> None:
    mem = treemem.TreeMemory(pss=lambda pid: MIB, clock=FakeClock())
    mem.sample({1: MIB, 2: MIB})
    assert mem.sample({1: MIB}) == MIB


def test_the_readers_see_this_process() -> None:
    import os

    rss, pss = treemem.read_rss(os.getpid()), treemem.read_pss(os.getpid())
    assert rss is not None and pss is not None and 0 < pss <= rss
    assert treemem.read_rss(2**22 + 1) is None and treemem.read_pss(2**22 + 1) is None


FORKS = textwrap.dedent(
    """
    import os, signal, sys, time
    buf = bytearray(os.urandom(1024 * 1024)) * 150  # 150 MiB, every page touched
    kids = []
    for _ in range(5):
        pid = os.fork()
        if pid == 0:
            time.sleep(4)
            os._exit(0)
        kids.append(pid)
    for pid in kids:
        os.waitpid(pid, 0)
    print('BENCH_RESULT {"ok": true, "metrics": {"n": 1}}', flush=True)
    """
)


def test_a_tree_of_forks_sharing_their_pages_is_capped_by_its_pss_not_its_summed_rss() -> None:
    out = proc.run([sys.executable, "-c", FORKS], {}, str(ROOT), timeout_s=60, mem_cap_mib=400)
    assert out.ok, (out.error, out.stderr_tail)
    assert out.peak_rss_mib > 700  # six processes each mapping the 150 MiB
    assert 140 < out.peak_mib < 250  # the buffer counted once


def test_a_tree_over_its_cap_is_still_killed() -> None:
    out = proc.run([sys.executable, "-c", FORKS.replace("* 150", "* 300")], {}, str(ROOT), timeout_s=60,
                   mem_cap_mib=200)
    assert not out.ok and "memory cap 200 MiB" in str(out.error)
