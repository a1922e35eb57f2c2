"""Domain core: spectral conventions, spin physics, basis sets, preprocessing, fitting, QC.

Pure functions on numpy arrays. No sockets, no Qt, no files beyond basis and spin-table I/O.
"""
