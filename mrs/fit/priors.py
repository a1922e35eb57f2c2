"""Soft constraints on metabolite concentration ratios, where the literature gives a range.

At low SNR, small metabolites under large ones (Gln under Glu, NAAG under NAA, GABA under
tCr/Glx/MM) trade amplitude with their neighbours and their estimates scatter widely; LCModel
constrains such ratios softly for the same reason. Each prior is a Gaussian on
conc(numerator) - ratio * conc(denominator) with SD `sd * conc(denominator)`: one augmented row
of the linear solve (as the MM area priors), seen by NNLS, the Jacobian and the Fisher
information. The SDs are the spread of healthy adult brain values, so a spectrum with enough
SNR overrules them; they matter only where the data cannot tell.

Sources: NAAG/NAA: Pouwels & Frahm, MRM 1997 (NAAG 0.6-2.7 mM, NAA 7.9-11 mM: 0.07-0.3);
Gln/Glu: Govindaraju et al., NMR Biomed 2000 and de Graaf, In vivo NMR spectroscopy 2019
(Gln 2-5, Glu 6-12.5 mM: 0.2-0.6); GABA/tCr: the same tables (GABA 1-2 mM, tCr 7-10 mM).
"""

from __future__ import annotations

from mrs.names import canonical

# (numerator, denominator members, ratio, SD), canonical names
RATIO_PRIORS: tuple[tuple[str, tuple[str, ...], float, float], ...] = (
    ("NAAG", ("NAA",), 0.15, 0.1),
    ("Gln", ("Glu",), 0.35, 0.2),
    ("GABA", ("Cr", "PCr"), 0.15, 0.1),
)


def ratio_prior_rows(names: tuple[str, ...] | list[str]) -> list[tuple[int, tuple[int, ...], float, float]]:
    """(numerator index, denominator indices, ratio, SD) for each prior whose metabolites the
    basis holds (all of the denominator's members present, as in a standard brain basis)."""
    canon = [canonical(n) for n in names]
    rows = []
    for num, den, ratio, sd in RATIO_PRIORS:
        if num not in canon or any(d not in canon for d in den):
            continue
        rows.append((canon.index(num), tuple(canon.index(d) for d in den), ratio, sd))
    return rows
