"""The workload under test: its manifests, the step table, the handle that takes steps, probes and judges."""
