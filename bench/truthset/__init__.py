"""An independent truth set for judging spectral fitters (mrsmon, LCModel, FSL-MRS) on equal terms.

Not mrsmon's simulator and not its fitting model run forward: the spectra are built here from a
basis given as an LCModel .BASIS file (a public spant-simulated one, or any other), with a
field-map lineshape (histogram of a random smooth B0 field over the voxel, times each
metabolite's own T2 decay), a macromolecule background from another literature table
(Lorentzian-dominated lines), residual water of 1-4 lines, a baseline of random polynomials and
broad Gaussians, any zero-order phase, a first-order phase, shifts of +-10 Hz and NAA SNR 10-160.
Each spectrum is written as LCModel .RAW + .CONTROL and NIfTI-MRS, with its truth in JSON.

    generate.py   configurations, drawing, writing (the entry point: generate_set)
    physics.py    lineshape, macromolecules, water, baseline, concentrations
    basis_file.py a minimal .BASIS reader of its own (so the truth does not rest on mrsmon's reader)
    writers.py    .RAW, .CONTROL and NIfTI-MRS writers
    mm_entries.py MM entries in other groups' styles, appended to the .BASIS the fitters get
    fslmrs_worker.py  run by FSL-MRS's own Python: fits a list of files, prints JSON
"""
