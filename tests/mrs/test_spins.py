"""The bundled spin-system table: complete, well-formed, with the published anchor values."""

import pytest

from mrs.basis_sim import DEFAULT_METABOLITES
from mrs.spins import SpinTableError, get_metabolites, load_spin_table, parse_table


def test_table_holds_every_default_metabolite_with_a_source():
    table = load_spin_table()
    for name in DEFAULT_METABOLITES:
        assert name in table, name
        assert table[name].source, f"{name} has no source"


@pytest.mark.parametrize("name, protons", [("NAA", 6), ("Cr", 5), ("PCr", 5), ("Glu", 5), ("Gln", 5),
                                           ("GABA", 6), ("mI", 6), ("sI", 6), ("Lac", 4), ("Gly", 2),
                                           ("Glc", 7), ("GPC", 18), ("PCh", 13), ("Tau", 4)])
def test_proton_counts(name, protons):
    assert load_spin_table()[name].protons == pytest.approx(protons)


def test_anchor_shifts():
    t = load_spin_table()
    assert t["NAA"].systems[0].groups[0].ppm == pytest.approx(2.008)
    assert t["Cr"].systems[0].groups[0].ppm == pytest.approx(3.027)
    assert t["Cr"].systems[1].groups[0].ppm == pytest.approx(3.913)
    glu = t["Glu"].systems[0]
    assert len(glu.groups) == 5 and len(glu.couplings) == 8  # five-spin, strongly coupled
    assert glu.groups[0].ppm == pytest.approx(3.7433)


def test_unknown_metabolite_is_a_clear_error():
    with pytest.raises(SpinTableError, match="no spin system for Foo"):
        get_metabolites(["NAA", "Foo"])


def test_bad_coupling_index_is_rejected():
    bad = {"metabolites": {"X": {"systems": [{"spins": [["a", 1.0]], "couplings": [[0, 3, 7.0]]}]}}}
    with pytest.raises(SpinTableError, match="does not join two spins"):
        parse_table(bad)


def test_digest_changes_with_physics():
    t = load_spin_table()
    assert t["Glu"].digest() != t["Gln"].digest()
    assert t["Glu"].digest() == load_spin_table()["Glu"].digest()
