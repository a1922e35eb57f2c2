"""A 3-minute session plan shared by the analysis tests (a dict, as protocols.plan.plan_from_dict takes)."""

MINI = {
    "name": "quick",  # the agent knows this plan by name: a replay gets the same block size and window
    "description": "3-minute test session",
    "acquisition": {"field_strength_t": 2.89, "spectrometer_frequency_mhz": 123.25, "nucleus": "1H",
                    "sequence": "PRESS", "echo_time_ms": 30.0, "te1_ms": 15.0, "repetition_time_s": 2.0,
                    "points": 2048, "bandwidth_hz": 4000.0, "coils": 2, "voxel_mm": [20.0, 20.0, 20.0],
                    "water_reference_transients": 2, "noise_scans": 1, "dummy_scans": 2},
    "timeline": {"duration_min": 3.0,
                 "phases": [{"name": "baseline", "start_min": 0.0, "end_min": 1.0},
                            {"name": "infusion", "start_min": 1.0, "end_min": 2.5},
                            {"name": "washout", "start_min": 2.5, "end_min": 3.0}],
                 "events": [{"kind": "infusion_start", "at_min": 1.0, "value": {"dose_mg_per_kg": 0.5}},
                            {"kind": "vitals", "at_min": 2.0},
                            {"kind": "infusion_stop", "at_min": 2.5}]},
    "processing": {"block_transients": 8, "fit_window_ppm": [0.2, 4.2], "measure": "Glu/tCr"},
    "subject": {"kit_code": "KIT-4711"},
    "simulation": {"scenario": "ketamine", "condition": "placebo", "snr_naa_single": 30.0, "linewidth_hz": 6.0,
                   "drift_hz_per_min": 0.5, "response_pct": 8.0, "response_onset_min": 0.2,
                   "response_rise_min": 0.5, "response_decay_min": 0.5, "motion_events": 1},
}
