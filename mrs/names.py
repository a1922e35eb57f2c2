"""Metabolite names: aliases, combined metabolites and the ratios a block result reports.

Concentration keys stay the basis's own names; combined metabolites and ratios use canonical names
so that "Ins", "mI" and "myo-inositol" from different basis sets all end up in "mI/tCr".
"""

from __future__ import annotations

import re

# canonical name -> aliases (compared case-insensitively, ignoring spaces, dashes and underscores)
ALIASES: dict[str, tuple[str, ...]] = {
    "NAA": ("NAA", "N-acetylaspartate"),
    "NAAG": ("NAAG", "N-acetylaspartylglutamate"),
    "Cr": ("Cr", "Creatine", "Cre"),                  # Cre, PCre, Myo: jMRUI/QUEST-style bases
    "PCr": ("PCr", "Phosphocreatine", "PhCr", "PCre"),
    "GPC": ("GPC", "Glycerophosphocholine", "GPCho"),
    "PCh": ("PCh", "PCho", "Phosphocholine", "PC"),
    "Cho": ("Cho", "Choline", "FreeCho"),
    "mI": ("mI", "Ins", "mIns", "myo-inositol", "myoinositol", "Inositol", "MyoIns", "Myo"),
    "sI": ("sI", "sIns", "Scyllo", "scyllo-inositol", "Scy", "sInos"),
    "Glu": ("Glu", "Glutamate"),
    "Gln": ("Gln", "Glutamine"),
    "GABA": ("GABA", "gamma-aminobutyric acid"),
    "GSH": ("GSH", "Glutathione"),
    "Tau": ("Tau", "Taurine"),
    "Lac": ("Lac", "Lactate"),
    "Asp": ("Asp", "Aspartate"),
    "Glc": ("Glc", "Glucose", "bGlc", "aGlc"),
    "Ala": ("Ala", "Alanine"),
    "Gly": ("Gly", "Glycine"),
    "PE": ("PE", "PEtn", "Phosphoethanolamine", "PEA"),
    "Ser": ("Ser", "Serine"),
    "Ace": ("Ace", "Acetate"),
    "Cit": ("Cit", "Citrate"),
    "EtOH": ("EtOH", "Ethanol"),
    "bHB": ("bHB", "BHB", "beta-hydroxybutyrate"),
    "2HG": ("2HG", "2-hydroxyglutarate"),
    "Mac": ("Mac", "MM", "Macromolecules", "MMexp", "MM_exp"),
    # Combined entries a basis sometimes ships already summed.
    "tCr": ("tCr", "Cr+PCr", "TCr"),
    "tNAA": ("tNAA", "NAA+NAAG", "TNAA"),
    "tCho": ("tCho", "GPC+PCh", "GPC+PCho", "TCho"),
    "Glx": ("Glx", "Glu+Gln"),
}

# combined name -> canonical parts; a combined value exists when at least one part is in the basis
COMBINED: dict[str, tuple[str, ...]] = {
    "Glx": ("Glu", "Gln"),
    "tNAA": ("NAA", "NAAG"),
    "tCr": ("Cr", "PCr"),
    "tCho": ("GPC", "PCh", "Cho"),
}

RATIO_NUMERATORS_TCR = ("Glu", "Gln", "Glx", "NAA", "tNAA", "tCho", "mI", "GABA", "GSH", "Lac", "sI", "Tau")
RATIO_NUMERATORS_TNAA = ("Glu", "Gln", "Glx")


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name).lower()


_LOOKUP: dict[str, str] = {_key(a): canon for canon, aliases in ALIASES.items() for a in aliases}
_MM_PATTERN = re.compile(r"^(mm|mac|lip|mmexp|mm_?\d|lipid)", re.IGNORECASE)


def canonical(name: str) -> str:
    """The canonical name for a basis name ("Ins" -> "mI"); unknown names come back unchanged."""
    return _LOOKUP.get(_key(name), name)


def is_macromolecule(name: str) -> bool:
    """True for macromolecule and lipid basis entries (MM09, MM_20, Mac, Lip13a, ...)."""
    return bool(_MM_PATTERN.match(name.strip())) or canonical(name) == "Mac"


def combination_weights(basis_names: tuple[str, ...] | list[str]) -> dict[str, dict[str, float]]:
    """For each reportable quantity (basis name, canonical single name, combined name): the basis
    names it sums, with weight 1. Combined entries shipped in the basis are used as they are."""
    canon_of = {n: canonical(n) for n in basis_names}
    by_canon: dict[str, list[str]] = {}
    for n, c in canon_of.items():
        by_canon.setdefault(c, []).append(n)
    out: dict[str, dict[str, float]] = {n: {n: 1.0} for n in basis_names}
    for canon, members in by_canon.items():
        out.setdefault(canon, {m: 1.0 for m in members})
    for combo, parts in COMBINED.items():
        if combo in by_canon:  # the basis has it already (e.g. a "tCr" spectrum)
            continue
        members = [m for p in parts for m in by_canon.get(p, [])]
        if members:
            out.setdefault(combo, {m: 1.0 for m in members})
    return out


def ratio_pairs(available: set[str] | list[str]) -> list[tuple[str, str]]:
    """(numerator, denominator) pairs for the ratios reported, among the available quantities."""
    have = set(available)
    pairs = []
    for den, nums in (("tCr", RATIO_NUMERATORS_TCR), ("tNAA", RATIO_NUMERATORS_TNAA)):
        if den not in have:
            continue
        pairs.extend((n, den) for n in nums if n in have and n != den)
    return pairs
