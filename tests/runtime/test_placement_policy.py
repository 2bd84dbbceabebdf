"""The placement group policy is pure: exact node choices for each strategy on plain data."""

import pytest

from spindle._placement import NodeRoom, gang_demand, place_bundles, validate


def nodes(**cpus: float) -> list[NodeRoom]:
    return [NodeRoom(nid, {"CPU": c}) for nid, c in cpus.items()]


def test_strict_pack_puts_every_bundle_on_the_first_node_that_holds_their_sum() -> None:
    assert place_bundles([{"CPU": 1}, {"CPU": 2}], "STRICT_PACK", nodes(a=2, b=4, c=8)) == ["b", "b"]


def test_strict_pack_fails_when_no_single_node_holds_the_sum() -> None:
    assert place_bundles([{"CPU": 2}, {"CPU": 2}], "STRICT_PACK", nodes(a=3, b=3)) is None


def test_pack_fills_a_used_node_before_opening_another() -> None:
    assert place_bundles([{"CPU": 1}] * 3, "PACK", nodes(a=2, b=4)) == ["a", "a", "b"]
    assert place_bundles([{"CPU": 3}, {"CPU": 1}], "PACK", nodes(a=2, b=4)) == ["b", "b"]


def test_pack_fails_only_when_some_bundle_fits_nowhere() -> None:
    assert place_bundles([{"CPU": 2}] * 3, "PACK", nodes(a=2, b=2)) is None


def test_strict_spread_uses_a_different_node_per_bundle() -> None:
    assert place_bundles([{"CPU": 1}] * 3, "STRICT_SPREAD", nodes(c=4, a=4, b=4)) == ["a", "b", "c"]


def test_strict_spread_fails_with_fewer_nodes_than_bundles() -> None:
    assert place_bundles([{"CPU": 1}] * 3, "STRICT_SPREAD", nodes(a=8, b=8)) is None


def test_strict_spread_skips_nodes_without_room() -> None:
    assert place_bundles([{"CPU": 2}, {"CPU": 2}], "STRICT_SPREAD", nodes(a=1, b=2, c=2)) == ["b", "c"]


def test_spread_falls_back_to_the_least_used_node_when_nodes_run_out() -> None:
    assert place_bundles([{"CPU": 1}] * 5, "SPREAD", nodes(a=4, b=4)) == ["a", "b", "a", "b", "a"]


def test_custom_resources_steer_bundles() -> None:
    room = [NodeRoom("a", {"CPU": 4}), NodeRoom("b", {"CPU": 4, "GPU": 1})]
    assert place_bundles([{"CPU": 1}, {"GPU": 1}], "SPREAD", room) == ["a", "b"]
    assert place_bundles([{"GPU": 1}, {"GPU": 1}], "PACK", room) is None


def test_no_nodes_means_no_placement() -> None:
    assert place_bundles([{"CPU": 1}], "PACK", []) is None


def test_gang_demand_merges_equal_bundles_and_sums_strict_pack() -> None:
    assert gang_demand([{"CPU": 1}, {"CPU": 1}, {"GPU": 1}], "SPREAD") == [({"CPU": 1.0}, 2), ({"GPU": 1.0}, 1)]
    assert gang_demand([{"CPU": 1}, {"CPU": 2, "GPU": 1}], "STRICT_PACK") == [({"CPU": 3.0, "GPU": 1.0}, 1)]


@pytest.mark.parametrize("bundles,strategy,words", [
    ([{"CPU": 1}], "TIGHT", "Invalid placement group strategy"),
    ([], "PACK", "non-empty list"),
    ([{}], "PACK", "non-empty dict"),
    ([{"CPU": -1}], "PACK", "invalid resource"),
    ([{"CPU": 0}], "PACK", "asks for no resources"),
])
def test_bad_arguments_get_errors_that_say_what_to_pass(bundles: list, strategy: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        validate(bundles, strategy)


def test_a_plain_bundle_does_not_take_the_only_node_a_custom_bundle_fits() -> None:
    # in node-id order the greedy pass puts {"CPU": 1} on "a", the one node with "spare"; the search moves it
    rooms = [NodeRoom("a", {"CPU": 1, "spare": 1}), NodeRoom("b", {"CPU": 2}), NodeRoom("c", {"CPU": 1})]
    bundles = [{"CPU": 1}, {"CPU": 1, "spare": 0.5}]
    assert place_bundles(bundles, "SPREAD", rooms) == ["b", "a"]
    assert place_bundles(bundles, "STRICT_SPREAD", rooms) == ["b", "a"]
    assert place_bundles(bundles, "PACK", rooms) == ["b", "a"]


def test_strict_spread_finds_the_one_assignment_that_works() -> None:
    rooms = [NodeRoom("a", {"CPU": 4, "gpu": 1}), NodeRoom("b", {"CPU": 4, "gpu": 1}), NodeRoom("c", {"CPU": 4})]
    bundles = [{"CPU": 1}, {"CPU": 1}, {"gpu": 1}]
    assert place_bundles(bundles, "STRICT_SPREAD", rooms) == ["b", "c", "a"]  # the gpu bundle placed first


def test_the_search_still_says_none_when_nothing_fits() -> None:
    rooms = [NodeRoom("a", {"CPU": 1, "spare": 1}), NodeRoom("b", {"CPU": 1})]
    assert place_bundles([{"CPU": 1}, {"CPU": 1, "spare": 1}, {"CPU": 1}], "SPREAD", rooms) is None
