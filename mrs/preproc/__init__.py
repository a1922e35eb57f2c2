"""Preprocessing: pure functions on arrays that return their estimates along with the data.

coils (prewhitening, combination), eddy (Klose), align (spectral registration), outliers
(rejection with reasons), average (blocks and sliding windows), water (HLSVD residual water removal).
"""
