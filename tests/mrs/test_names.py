"""Metabolite names: aliases, combined metabolites, ratio pairs."""

from mrs import names


def test_aliases_map_to_canonical_names():
    assert names.canonical("Ins") == "mI"
    assert names.canonical("myo-inositol") == "mI"
    assert names.canonical("PCho") == "PCh"
    assert names.canonical("sIns") == "sI"
    assert names.canonical("Scyllo") == "sI"
    assert names.canonical("MM") == "Mac"
    assert names.canonical("Glu") == "Glu"
    assert names.canonical("SomethingNew") == "SomethingNew"
    # VeSPA's full names and jMRUI/QUEST-style short ones
    for name, canon in (("creatine", "Cr"), ("n-acetylaspartate", "NAA"), ("Cre", "Cr"), ("PCre", "PCr"),
                        ("Myo", "mI"), ("glycerophosphocholine", "GPC")):
        assert names.canonical(name) == canon, name


def test_macromolecule_names_are_recognised():
    for n in ("MM09", "MM_20", "Mac", "Lip13", "MMaux379", "Lip09"):
        assert names.is_macromolecule(n), n
    for n in ("NAA", "Glu", "mI", "GPC"):
        assert not names.is_macromolecule(n), n


def test_combined_metabolites_use_basis_names_through_aliases():
    w = names.combination_weights(("Glu", "Gln", "NAA", "NAAG", "Cr", "PCr", "GPC", "PCho", "Ins"))
    assert w["Glx"] == {"Glu": 1.0, "Gln": 1.0}
    assert w["tCho"] == {"GPC": 1.0, "PCho": 1.0}
    assert w["tNAA"] == {"NAA": 1.0, "NAAG": 1.0}
    assert w["mI"] == {"Ins": 1.0}
    assert w["Ins"] == {"Ins": 1.0}


def test_combined_entry_shipped_in_basis_is_not_rebuilt():
    w = names.combination_weights(("Glu", "tCr", "NAA"))
    assert w["tCr"] == {"tCr": 1.0}
    assert "Glx" in w and w["Glx"] == {"Glu": 1.0}


def test_ratio_pairs_cover_the_reported_set():
    w = names.combination_weights(("Glu", "Gln", "NAA", "NAAG", "Cr", "PCr", "GPC", "PCh", "mI", "GABA", "GSH"))
    pairs = set(names.ratio_pairs(set(w)))
    for num in ("Glu", "Gln", "Glx", "NAA", "tNAA", "tCho", "mI", "GABA", "GSH"):
        assert (num, "tCr") in pairs
    assert ("Glu", "tNAA") in pairs and ("Glx", "tNAA") in pairs
    assert ("tCr", "tCr") not in pairs
