"""Fit NIfTI-MRS files with FSL-MRS as its users do; run by FSL-MRS's own Python (its venv).

    FSLMRS_PYTHON fslmrs_worker.py JOB.json OUT.json

JOB: {"basis": .BASIS path, "files": [NIfTI-MRS paths]}. Steps, as the FSL-MRS documentation
recommends for such data: the basis with FSL-MRS's default macromolecule peaks added
(`basis_tools add_set --add_MM`, Lorentzian 40 Hz and Gaussian 30 Hz widths), each MM in its own
metabolite group; zero-order phasing on the 2.8-3.2 ppm peak (`fsl_mrs_proc phase`); then
`fsl_mrs`'s fit (Newton, Voigt, baseline "poly, 2", window 0.2-4.2 ppm, its own checks of the
FID's and basis's conjugation). Imports nothing from mrsmon. Output per file: raw concentrations
and CRLB SDs by name, CPU seconds of phase + fit, or an error sentence.
"""

from __future__ import annotations

import json
import sys
import time


def main() -> int:
    import numpy as np
    from fsl_mrs.utils import fitting, misc, mrs_io
    from fsl_mrs.utils.constants import PPM_RANGE
    from fsl_mrs.utils.misc import detect_conjugation
    from fsl_mrs.utils.preproc import nifti_mrs_proc

    job = json.loads(open(sys.argv[1]).read())
    basis = mrs_io.read_basis(job["basis"])
    conj = bool(detect_conjugation(basis.original_basis_array.T, basis.original_ppm_shift_axis, PPM_RANGE["1H"]))
    basis.add_default_MM_peaks(40, 30, conj=conj)
    mm_names = [n for n in basis.names if str(n).startswith("MM")]
    out = {}
    for path in job["files"]:
        c0 = time.process_time()
        try:
            data = nifti_mrs_proc.phase_correct(mrs_io.read_FID(path), (2.8, 3.2))
            mrs = data.mrs(basis=basis)
            mrs.check_FID(repair=True)
            mrs.check_Basis(repair=True)
            mrs.rescaleForFitting()
            res = fitting.fit_FSLModel(mrs, method="Newton", ppmlim=None, baseline="poly, 2",
                                       metab_groups=misc.parse_metab_groups(mrs, mm_names), model="voigt")
            names = [str(n) for n in res.metabs]
            conc = np.asarray(res.getConc(scaling="raw"), float)
            sd = np.asarray(res.getUncertainties(type="raw"), float)
            out[path] = {"conc": dict(zip(names, conc.tolist())), "sd": dict(zip(names, sd.tolist())),
                         "cpu_s": time.process_time() - c0}
        except Exception as exc:  # one bad fit must not lose the others
            out[path] = {"error": f"{type(exc).__name__}: {exc}", "cpu_s": time.process_time() - c0}
        # after every file: a run stopped part-way keeps what it has fitted (tens of seconds each)
        open(sys.argv[2], "w").write(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
