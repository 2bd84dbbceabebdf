"""The object store's budget policy: where objects go, what spills first, when an owner counts as dead."""

from __future__ import annotations

from spindle._agent.store_budget import OwnerLiveness, Plan, StoreBudget, default_capacity, fmt_bytes

MiB = 1 << 20


def budget_with(capacity: int, *sizes: int) -> StoreBudget:
    b = StoreBudget(capacity)
    for i, size in enumerate(sizes):
        b.add(bytes([i]), size, "owner", now=float(i), in_memory=True)
    return b


def test_an_object_that_fits_goes_to_memory_without_spilling() -> None:
    b = budget_with(100 * MiB, 30 * MiB)
    assert b.plan(70 * MiB) == Plan("memory")


def test_above_the_limit_the_least_recently_used_objects_spill_with_headroom() -> None:
    b = budget_with(100 * MiB, 30 * MiB, 30 * MiB, 30 * MiB)
    # 90 used + 20 new = 10 over; goal 10 + 20% of 100 = 30: the oldest object alone covers it
    assert b.plan(20 * MiB) == Plan("memory", [b"\x00"])
    b.touch(b"\x00", now=10.0)  # read recently: now the second is the oldest
    assert b.plan(20 * MiB) == Plan("memory", [b"\x01"])


def test_busy_objects_are_never_spilled() -> None:
    b = budget_with(100 * MiB, 30 * MiB, 30 * MiB, 30 * MiB)
    assert b.plan(20 * MiB, busy={b"\x00", b"\x01"}) == Plan("memory", [b"\x02"])


def test_when_everything_is_busy_the_new_object_goes_to_disk() -> None:
    b = budget_with(100 * MiB, 50 * MiB, 40 * MiB)
    assert b.plan(20 * MiB, busy={b"\x00", b"\x01"}) == Plan("disk", [])
    # spilling what can be spilled still helps later puts, but does not make room for this one
    assert b.plan(60 * MiB, busy={b"\x00"}) == Plan("disk", [b"\x01"])


def test_an_object_larger_than_the_whole_store_goes_straight_to_disk() -> None:
    assert budget_with(100 * MiB).plan(101 * MiB) == Plan("disk")


def test_a_restore_never_spills_the_object_being_restored() -> None:
    b = budget_with(100 * MiB, 60 * MiB, 30 * MiB)
    b.moved(b"\x00", in_memory=False)
    assert b.plan(80 * MiB, exclude=b"\x00") == Plan("memory", [b"\x01"])


def test_accounting_follows_adds_moves_and_removes() -> None:
    b = budget_with(100 * MiB, 10 * MiB, 20 * MiB)
    assert (b.used, b.spilled) == (30 * MiB, 0)
    b.moved(b"\x01", in_memory=False)
    assert (b.used, b.spilled) == (10 * MiB, 20 * MiB)
    b.moved(b"\x01", in_memory=False)  # twice changes nothing
    assert (b.used, b.spilled) == (10 * MiB, 20 * MiB)
    b.remove(b"\x01")
    b.add(b"\x00", 5 * MiB, "other", now=0.0, in_memory=True)  # re-adding replaces
    assert (b.used, b.spilled) == (5 * MiB, 0)
    assert b.owned_by("other") == [b"\x00"] and b.owners() == {"other"}
    assert b.describe() == "5.0 MiB of 100.0 MiB in memory (1 objects), 0 B spilled (0 objects)"


def test_writers_preallocate_only_while_the_store_is_less_than_half_full() -> None:
    assert budget_with(100 * MiB, 49 * MiB).spare_ok()
    assert not budget_with(100 * MiB, 50 * MiB).spare_ok()


def test_default_capacity_is_30_percent_of_memory_capped_by_shm() -> None:
    assert default_capacity(10_000 * MiB, 20_000 * MiB) == (3_000 * MiB, False)
    assert default_capacity(10_000 * MiB, 64 * MiB) == (int(64 * MiB * 0.95), True)


def test_a_local_owner_is_dead_after_three_unreachable_probes_in_a_row() -> None:
    lv = OwnerLiveness()
    assert [lv.observe("a", False, local=True) for _ in range(2)] == [False, False]
    assert not lv.observe("a", True, local=True)  # one answer resets the count
    assert [lv.observe("a", False, local=True) for _ in range(3)] == [False, False, True]
    assert "a" not in lv.failures


def test_a_remote_owner_gets_a_longer_grace() -> None:
    lv = OwnerLiveness()
    assert [lv.observe("b", False, local=False) for _ in range(10)] == [False] * 9 + [True]


def test_sizes_read_well() -> None:
    assert [fmt_bytes(n) for n in (5, 2048, 3 * MiB // 2, 5 << 30)] == ["5 B", "2.0 KiB", "1.5 MiB", "5.0 GiB"]


def test_writers_get_a_credit_of_5_percent_only_while_the_store_is_less_than_half_full() -> None:
    assert budget_with(100 * MiB, 10 * MiB).credit() == 5 * MiB
    assert budget_with(100 * MiB, 50 * MiB).credit() == 0
    assert budget_with(10_000 * MiB).credit() == 64 * MiB  # capped
