"""Real scanners in: the ISMRM Raw Data (MRD) streaming bridge and MRD file reading.

`framing` (MRD 1 session messages), `header` (acquisition header -> session fields, pseudonyms),
`mapping` (acquisition -> transient), `session` (one measurement as one mrsmon session),
`bridge` (the server), `mrd2` (MRD 2 streams), `files` (MRD files for replay). The `ismrmrd` and
`mrd` packages are imported only inside functions here, so `mrsmon agent` never loads them.
"""
