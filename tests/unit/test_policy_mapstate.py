"""Endpoint policies → map contents: shared sets, stable IDs, carve-outs kept."""

from axoneme.policy import mapstate
from axoneme.policy.types import DirectionPolicy, EndpointPolicy, PortVerdicts

TCP80 = ((6 << 16) | 80, (6 << 16) | 80)


def policy(ep: int, **ingress: object) -> EndpointPolicy:
    return EndpointPolicy(ep, DirectionPolicy(**ingress), DirectionPolicy())  # type: ignore[arg-type]


def test_identical_verdicts_share_one_set_with_a_stable_id() -> None:
    allow = PortVerdicts(allow=(TCP80,))
    a = mapstate.build(
        [
            policy(1, enforced=True, by_identity={300: allow}),
            policy(2, enforced=True, by_identity={400: allow}),
        ]
    )
    b = mapstate.build([policy(2, enforced=True, by_identity={400: allow})])
    assert len(a.port_sets) == 1
    assert a.by_identity[(300, 1, 0)] == a.by_identity[(400, 2, 0)] == b.by_identity[(400, 2, 0)]
    assert a.flags == {1: mapstate.FLAG_INGRESS_ENFORCED, 2: mapstate.FLAG_INGRESS_ENFORCED}


def test_empty_prefix_sets_are_written_as_carve_outs() -> None:
    state = mapstate.build(
        [
            policy(
                1,
                enforced=True,
                by_prefix={
                    "10.42.2.0/24": PortVerdicts(allow=(TCP80,)),
                    "10.42.2.7/32": PortVerdicts(),
                },
            )
        ]
    )
    assert set(state.by_prefix) == {(1, 0, "10.42.2.0/24"), (1, 0, "10.42.2.7/32")}
    # ...but an identity with no verdicts needs no entry.
    state = mapstate.build([policy(1, enforced=True, by_identity={300: PortVerdicts()})])
    assert state.by_identity == {}


def test_diff() -> None:
    upserts, deletes = mapstate.diff({("a",): 1, ("b",): 2}, {("b",): 3, ("c",): 4})
    assert upserts == {("b",): 3, ("c",): 4} and deletes == [("a",)]
