"""Selector semantics, entities, CNP CIDR peers, and the incremental selector cache."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from axoneme.identity.reserved import RESERVED, reserved_labels
from axoneme.labels.model import Label, LabelSet
from axoneme.policy.selector import (
    Selectable,
    SelectorCache,
    matches,
    policy_selectables,
)
from axoneme.policy.types import (
    CIDRPeer,
    Peers,
    Policy,
    Requirement,
    Rule,
    Selector,
)


def labels(*texts: str) -> LabelSet:
    return frozenset(Label.parse(t) for t in texts)


def sel(*reqs: Requirement) -> Selector:
    return Selector(tuple(reqs))


def eq(key: str, value: str) -> Requirement:
    return Requirement(key, "In", frozenset({value}))


def cidr_identity(prefix: str) -> LabelSet:
    return frozenset({Label("cidr", prefix), Label("reserved", "world")})


WEB = labels("k8s:app=web", "k8s:io.kubernetes.pod.namespace=demo", "container:tier=front")
DB = labels("k8s:app=db", "k8s:io.kubernetes.pod.namespace=demo")
UNIVERSE: dict[int, LabelSet] = {
    **{number: reserved_labels(name) for name, number in RESERVED.items()},
    300: WEB,
    301: DB,
    302: labels("k8s:app=web", "k8s:io.kubernetes.pod.namespace=other"),
    1 << 24 | 1: cidr_identity("10.0.0.0/8"),
    1 << 24 | 2: cidr_identity("10.1.0.0/16"),
    1 << 24 | 3: cidr_identity("10.1.2.0/24"),
    1 << 24 | 4: cidr_identity("192.168.0.0/16"),
    1 << 24 | 5: cidr_identity("2001-db8--/32"),
}


def test_bare_key_matches_any_source_source_key_only_its_own() -> None:
    assert matches(sel(eq("app", "web")), WEB)
    assert matches(sel(eq("k8s:app", "web")), WEB)
    assert matches(sel(eq("any:app", "web")), WEB)
    assert not matches(sel(eq("container:app", "web")), WEB)
    assert matches(sel(eq("tier", "front")), WEB)
    assert not matches(sel(eq("k8s:tier", "front")), WEB)
    # key and value must both match
    assert not matches(sel(eq("app", "")), WEB)
    assert matches(sel(eq("reserved:host", "")), reserved_labels("host"))
    assert matches(Selector(), WEB) and matches(Selector(), frozenset())


def test_operators() -> None:
    not_in = Requirement("app", "NotIn", frozenset({"db", "cache"}))
    assert matches(sel(not_in), WEB)
    assert not matches(sel(not_in), DB)
    assert matches(sel(not_in), reserved_labels("world"))  # key absent: NotIn matches
    assert matches(sel(Requirement("k8s:app", "Exists")), DB)
    assert not matches(sel(Requirement("container:app", "Exists")), DB)
    assert matches(sel(Requirement("app", "DoesNotExist")), reserved_labels("host"))
    assert not matches(sel(Requirement("app", "DoesNotExist")), WEB)
    in_ = Requirement("app", "In", frozenset({"web", "db"}))
    assert matches(sel(in_), WEB) and matches(sel(in_), DB)
    # requirements are ANDed
    assert not matches(sel(in_, eq("tier", "front")), DB)
    assert matches(sel(in_, eq("tier", "front")), WEB)


def test_entities() -> None:
    cache = SelectorCache(UNIVERSE)
    cidrs = {1 << 24 | n for n in range(1, 6)}
    assert cache.select("host") == {1}
    assert cache.select("remote-node") == {6}
    assert cache.select("world") == {2} | cidrs
    assert cache.select("world-ipv4") == cache.select("world-ipv6") == cache.select("world")
    assert cache.select("cluster") == {1, 3, 4, 5, 6, 7, 8, 300, 301, 302}
    assert cache.select("all") == set(UNIVERSE)
    assert cache.select("none") == frozenset()
    assert cache.select("kube-apiserver") == {7}
    assert cache.select("health") == {4}
    assert cache.select("init") == {5}
    assert cache.select("unmanaged") == {3}
    assert cache.select("ingress") == {8}
    # reserved entities hold even with an empty universe
    assert SelectorCache().select("host") == {1}


def test_cnp_cidr_peers_select_cidr_identities() -> None:
    cache = SelectorCache(UNIVERSE)
    c = 1 << 24
    assert cache.select(CIDRPeer("10.0.0.0/8")) == {c | 1, c | 2, c | 3}
    assert cache.select(CIDRPeer("10.0.0.0/8", ("10.1.0.0/16",))) == {c | 1}
    assert cache.select(CIDRPeer("10.1.0.0/16", ("10.1.2.0/24",))) == {c | 2}
    # a prefix only partly inside the peer is not selected
    assert cache.select(CIDRPeer("10.1.2.0/24")) == {c | 3}
    assert cache.select(CIDRPeer("0.0.0.0/0")) == {2, c | 1, c | 2, c | 3, c | 4}
    assert cache.select(CIDRPeer("0.0.0.0/0", ("10.0.0.0/8",))) == {2, c | 4}
    assert cache.select(CIDRPeer("2001:db8::/16")) == {c | 5}
    # pods are never selected by CIDR (CNP semantics)
    assert not cache.select(CIDRPeer("0.0.0.0/0")) & {300, 301, 1}


def test_identity_zero_is_never_selected() -> None:
    cache = SelectorCache({0: reserved_labels("unknown"), 300: WEB})
    assert cache.select(Selector()) == {300}
    assert 0 not in cache.select("all")


def test_incremental_updates_report_changed_selectors() -> None:
    web, ns_demo = sel(eq("app", "web")), sel(eq("k8s:io.kubernetes.pod.namespace", "demo"))
    cache = SelectorCache(UNIVERSE, [web, ns_demo, "world", "cluster", CIDRPeer("10.0.0.0/8")])
    assert cache.add_identity(400, labels("k8s:app=web", "k8s:io.kubernetes.pod.namespace=x")) == {
        web,
        "cluster",
    }
    assert cache.select(web) == {300, 302, 400}
    assert cache.add_identity(1 << 24 | 9, cidr_identity("10.9.0.0/16")) == {
        "world",
        CIDRPeer("10.0.0.0/8"),
    }
    assert cache.add_identity(
        400, labels("k8s:app=db", "k8s:io.kubernetes.pod.namespace=demo")
    ) == {
        web,
        ns_demo,
    }
    assert cache.add_identity(400, cache.identities[400]) == frozenset()  # no change
    assert cache.remove_identity(400) == {ns_demo, "cluster"}
    assert cache.remove_identity(400) == frozenset()
    # fixed reserved members stay
    assert cache.remove_identity(1) == frozenset()
    assert 1 in cache.select("cluster")


def test_policy_selectables() -> None:
    web = sel(eq("app", "web"))
    policy = Policy(
        "CiliumNetworkPolicy",
        "demo",
        "p",
        Selector(),
        (
            Rule("ingress", "allow", Peers(selectors=(web,), entities=("host", "all"))),
            Rule(
                "egress",
                "deny",
                Peers(cidrs=(CIDRPeer("10.0.0.0/8"), CIDRPeer("1.0.0.0/8", match_pods=True))),
            ),
            Rule("egress", "allow", Peers(any_peer=True)),
        ),
        True,
        True,
    )
    assert policy_selectables(policy) == {web, "host", CIDRPeer("10.0.0.0/8")}


# ---- incremental == from scratch -------------------------------------------------

LABEL_POOL = [
    "k8s:app=web",
    "k8s:app=db",
    "container:app=web",
    "k8s:tier=a",
    "k8s:io.kubernetes.pod.namespace=demo",
    "k8s:io.kubernetes.pod.namespace=other",
    "reserved:world",
    "cidr:10.0.0.0/8",
    "cidr:10.1.0.0/16",
    "cidr:192.168.1.0/24",
]
SELECTABLES: list[Selectable] = [
    Selector(),
    sel(eq("app", "web")),
    sel(eq("k8s:app", "web")),
    sel(Requirement("app", "NotIn", frozenset({"db"}))),
    sel(Requirement("tier", "Exists"), Requirement("app", "DoesNotExist")),
    sel(eq("k8s:io.kubernetes.pod.namespace", "demo")),
    "world",
    "cluster",
    "host",
    "all",
    "none",
    CIDRPeer("10.0.0.0/8"),
    CIDRPeer("10.0.0.0/8", ("10.1.0.0/16",)),
    CIDRPeer("0.0.0.0/0"),
]
ops = st.lists(
    st.tuples(
        st.booleans(),
        st.sampled_from([1, 2, 300, 301, 302, 1 << 24 | 1, 1 << 24 | 2]),
        st.frozensets(st.sampled_from(LABEL_POOL), max_size=4),
    ),
    max_size=12,
)


@settings(max_examples=200, derandomize=True)
@given(ops)
def test_incremental_cache_equals_rebuilt_cache(
    steps: list[tuple[bool, int, frozenset[str]]],
) -> None:
    cache = SelectorCache({}, SELECTABLES)
    universe: dict[int, LabelSet] = {}
    for add, identity, texts in steps:
        before = cache.snapshot()
        if add:
            universe[identity] = labels(*texts)
            changed = cache.add_identity(identity, universe[identity])
        else:
            universe.pop(identity, None)
            changed = cache.remove_identity(identity)
        after = cache.snapshot()
        assert changed == {s for s in SELECTABLES if before[s] != after[s]}
        fresh = SelectorCache(universe, SELECTABLES).snapshot()
        assert after == fresh


MORE_SELECTABLES: list[Selectable] = [
    *SELECTABLES,
    sel(Requirement("app", "In", frozenset({"web", "db"}))),
    sel(eq("container:app", "web"), Requirement("tier", "Exists")),
]
churn = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from([1, 2, 300, 301, 302]),
                  st.frozensets(st.sampled_from(LABEL_POOL), max_size=4)),
        st.tuples(st.just("remove"), st.sampled_from([1, 2, 300, 301, 302]), st.just(frozenset())),
        st.tuples(st.just("register"), st.integers(0, len(MORE_SELECTABLES) - 1),
                  st.just(frozenset())),
        st.tuples(st.just("unregister"), st.integers(0, len(MORE_SELECTABLES) - 1),
                  st.just(frozenset())),
    ),
    max_size=16,
)  # fmt: skip


@settings(max_examples=200, derandomize=True)
@given(churn)
def test_label_index_stays_exact_while_selectors_come_and_go(
    steps: list[tuple[str, int, frozenset[str]]],
) -> None:
    """The label and anchor indexes never hide a member: after any mix of identity
    changes and selectors registered or forgotten, every set equals a rebuilt one."""
    cache = SelectorCache()
    universe: dict[int, LabelSet] = {}
    for op, n, texts in steps:
        if op == "add":
            universe[n] = labels(*texts)
            cache.add_identity(n, universe[n])
        elif op == "remove":
            universe.pop(n, None)
            cache.remove_identity(n)
        elif op == "register":
            cache.register(MORE_SELECTABLES[n])
        else:
            cache.unregister(MORE_SELECTABLES[n])
        registered = list(cache.selectables())
        assert cache.snapshot() == SelectorCache(universe, registered).snapshot()
